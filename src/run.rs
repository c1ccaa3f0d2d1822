//! The service commands of the binary: `up`, `frontend`, `cache-node` and
//! `manager` on real TCP, until SIGINT or SIGTERM.
//!
//! This is the production side of the seam: it binds tokio listeners, uses the tokio
//! connector, and seeds the services' generators from the operating system.

use std::sync::Arc;

use rand::RngCore;
use tokio_util::sync::CancellationToken;

use crate::cli::{CacheArgs, CacheNodeArgs, FrontendArgs, ManagerArgs, UpArgs};
use crate::frontend::FrontendSettings;
use crate::manager::ManagerSettings;
use crate::net::{SharedConnector, TokioConnector, TokioListener};
use crate::node::{CacheConfig, NodeSettings};
use crate::ring::Pool;
use crate::storage::local::LocalBlobStore;
use crate::storage::sqlite::SqliteKeyIndex;
use crate::up::{start_frontend, start_manager, start_node, start_up, UpSettings};

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

fn os_seed() -> u64 {
    rand::rngs::OsRng.next_u64()
}

fn cache_config(args: &CacheArgs) -> Result<CacheConfig, String> {
    let config = CacheConfig {
        capacity: args.capacity_mb,
        policy: args.policy,
    };
    config.validate().map_err(|e| e.message)?;
    Ok(config)
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

pub async fn run_up(args: UpArgs) -> Result<(), String> {
    let mut settings = UpSettings::new(args.data_dir.clone());
    settings.host = args.host;
    settings.frontend_port = args.frontend_port;
    settings.manager_port = args.manager_port;
    // Base 0 gives every slot a free port of the system's choosing.
    settings.node_ports = (0..args.node_slots)
        .map(|i| match args.node_port_base {
            0 => Ok(0),
            base => base
                .checked_add(i)
                .ok_or_else(|| "node ports run past 65535".to_owned()),
        })
        .collect::<Result<_, _>>()?;
    settings.cache = cache_config(&args.cache)?;
    settings.upload_max_bytes = args.upload_max_bytes;
    settings.strategy = args.strategy;
    settings.rng_seed = os_seed();
    let up = start_up(settings).await?;
    tracing::info!(
        frontend = %up.frontend.addr,
        manager = %up.manager.addr,
        nodes = ?up.node_addrs(),
        data_dir = %args.data_dir.display(),
        "memring is up"
    );
    shutdown_signal().await;
    up.stop().await;
    Ok(())
}

pub async fn run_frontend(args: FrontendArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let blobs = LocalBlobStore::open(&args.data_dir.join("blobs")).map_err(|e| e.to_string())?;
    let index = Arc::new(
        SqliteKeyIndex::open(&args.data_dir.join("index.sqlite"))
            .await
            .map_err(|e| e.to_string())?,
    );
    let listener = TokioListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let settings = FrontendSettings {
        manager_port: port_of(&args.manager).ok_or("--manager must be host:port")?,
        manager_addr: Some(args.manager),
        node_port: args.node_port,
        upload_max_bytes: args.upload_max_bytes,
        strategy: args.strategy,
        rng_seed: os_seed(),
        ..FrontendSettings::default()
    };
    let connector: SharedConnector = Arc::new(TokioConnector);
    let shutdown = CancellationToken::new();
    let service = start_frontend(
        settings,
        Arc::new(blobs),
        index.clone(),
        Box::new(listener),
        connector,
        shutdown,
    );
    tracing::info!(addr = %service.addr, "front-end listening");
    shutdown_signal().await;
    service.stop().await;
    index.close().await;
    Ok(())
}

pub async fn run_cache_node(args: CacheNodeArgs) -> Result<(), String> {
    let listener = TokioListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let settings = NodeSettings {
        node_id: args.node_id,
        node_port: args.node_port,
        manager_host: args.manager_host,
        cache: cache_config(&args.cache)?,
        rng_seed: os_seed(),
        body_max_bytes: args.item_max_bytes,
        floors_max: crate::cache::store::FLOORS_MAX_DEFAULT,
        incarnation: os_seed(),
    };
    let service = start_node(
        settings,
        Box::new(listener),
        Arc::new(TokioConnector),
        CancellationToken::new(),
    );
    tracing::info!(addr = %service.addr, "cache node listening");
    shutdown_signal().await;
    service.stop().await;
    Ok(())
}

pub async fn run_manager(args: ManagerArgs) -> Result<(), String> {
    let slots = Pool::parse_list(&args.nodes).map_err(|e| e.to_string())?;
    let listener = TokioListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let mut settings = ManagerSettings::new(slots.nodes().to_vec());
    settings.frontend_addr = Some(args.frontend);
    settings.node_port = args.node_port;
    settings.cache = cache_config(&args.cache)?;
    settings.state = Some(Arc::new(crate::manager::state::FileStateStore::real(
        args.state_file,
    )));
    settings.strategy = args.strategy;
    let service = start_manager(
        settings,
        Box::new(listener),
        Arc::new(TokioConnector),
        CancellationToken::new(),
    )?;
    tracing::info!(addr = %service.addr, "manager listening");
    shutdown_signal().await;
    service.stop().await;
    Ok(())
}
