//! The service commands of the binary: `up`, `frontend`, `cache-node` and
//! `manager` on real TCP, until SIGINT or SIGTERM.
//!
//! This is the production side of the seam: it binds tokio listeners, uses the tokio
//! connector, and seeds the services' generators from the operating system.

use std::sync::Arc;

use rand::RngCore;
use tokio_util::sync::CancellationToken;

use crate::cli::{CacheArgs, CacheNodeArgs, FrontendArgs, ManagerArgs, TokenArgs, UpArgs};
use memring::auth::{Secrets, Token};
use memring::frontend::FrontendSettings;
use memring::manager::ManagerSettings;
use memring::net::{SharedConnector, TokioConnector, TokioListener};
use memring::node::NodeSettings;
use memring::ring::Pool;
use memring::storage::local::LocalBlobStore;
use memring::storage::sqlite::SqliteKeyIndex;
use memring::up::{start_frontend, start_manager, start_node, start_up, UpSettings};
use memring::wire::node::CacheConfig;

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
    config.validate()?;
    Ok(config)
}

/// Whether `host` (an address or a name, perhaps in brackets) is loopback only.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host part of a `host:port` listen address.
fn host_of(listen: &str) -> &str {
    listen.rsplit_once(':').map_or(listen, |(host, _)| host)
}

/// Which tokens a role must have when it binds beyond loopback.
#[derive(Clone, Copy)]
struct Needs {
    cluster: bool,
    admin: bool,
}

impl Needs {
    /// The front-end, the manager and `memring up` check both tokens.
    const BOTH: Needs = Needs {
        cluster: true,
        admin: true,
    };
    /// A cache node checks the cluster token only.
    const CLUSTER: Needs = Needs {
        cluster: true,
        admin: false,
    };
}

/// The secrets of a role from its arguments. A role bound beyond loopback must
/// have the tokens it `needs`, unless `--insecure-no-token`; `generated` is
/// the cluster token `memring up` makes when none is given.
fn secrets_of(
    role: &str,
    args: &TokenArgs,
    host: &str,
    needs: Needs,
    generated: Option<Token>,
) -> Result<Secrets, String> {
    let parse = |setting: &str, text: &Option<String>| {
        text.as_deref()
            .map(Token::new)
            .transpose()
            .map_err(|e| format!("{setting}: {e}"))
    };
    let secrets = Secrets {
        cluster: parse("MEMRING_CLUSTER_TOKEN", &args.cluster_token)?.or(generated),
        admin: parse("MEMRING_ADMIN_TOKEN", &args.admin_token)?,
    };
    if !is_loopback(host) && !args.insecure_no_token {
        let missing: Vec<&str> = [
            (
                needs.cluster && secrets.cluster.is_none(),
                "MEMRING_CLUSTER_TOKEN",
            ),
            (
                needs.admin && secrets.admin.is_none(),
                "MEMRING_ADMIN_TOKEN",
            ),
        ]
        .into_iter()
        .filter_map(|(missing, name)| missing.then_some(name))
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{role} binds {host}, beyond loopback, without {}: set it, or pass --insecure-no-token to run open",
                missing.join(" and ")
            ));
        }
    }
    Ok(secrets)
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

pub async fn run_up(args: UpArgs) -> Result<(), String> {
    // The roles share a cluster token of this run unless one is given.
    let generated = Token::generate(&mut rand::rngs::OsRng);
    let secrets = secrets_of(
        "memring up",
        &args.tokens,
        &args.host,
        Needs::BOTH,
        Some(generated),
    )?;
    let mut settings = UpSettings::new(args.data_dir.clone());
    settings.secrets = secrets;
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
    settings.allow_any_type = args.allow_any_type;
    settings.response_budget_bytes = args.response_budget_mb.saturating_mul(1024 * 1024);
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
    let needs = Needs::BOTH;
    let secrets = secrets_of(
        "the front-end",
        &args.tokens,
        host_of(&args.listen),
        needs,
        None,
    )?;
    let listener = TokioListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let settings = FrontendSettings {
        secrets,
        manager_port: port_of(&args.manager).ok_or("--manager must be host:port")?,
        manager_addr: Some(args.manager),
        node_port: args.node_port,
        upload_max_bytes: args.upload_max_bytes,
        allow_any_type: args.allow_any_type,
        response_budget_bytes: args.response_budget_mb.saturating_mul(1024 * 1024),
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
    let needs = Needs::CLUSTER;
    let secrets = secrets_of(
        "the cache node",
        &args.tokens,
        host_of(&args.listen),
        needs,
        None,
    )?;
    let listener = TokioListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let settings = NodeSettings {
        node_id: args.node_id,
        node_port: args.node_port,
        manager_host: args.manager_host,
        manager_port: Some(args.manager_port),
        peers: match &args.peers {
            Some(list) => Some(
                Pool::parse_list(list)
                    .map_err(|e| format!("--peers: {e}"))?
                    .nodes()
                    .to_vec(),
            ),
            None => None,
        },
        cache: cache_config(&args.cache)?,
        rng_seed: os_seed(),
        body_max_bytes: args.item_max_bytes,
        floors_max: memring::limits::FLOORS_MAX_DEFAULT,
        incarnation: os_seed(),
        secrets,
        server: Default::default(),
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
    let needs = Needs::BOTH;
    let secrets = secrets_of(
        "the manager",
        &args.tokens,
        host_of(&args.listen),
        needs,
        None,
    )?;
    let listener = TokioListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let mut settings = ManagerSettings::new(slots.nodes().to_vec());
    settings.frontend_addr = Some(args.frontend);
    settings.node_port = args.node_port;
    settings.cache = cache_config(&args.cache)?;
    settings.state = Some(Arc::new(memring::manager::state::FileStateStore::real(
        args.state_file,
    )));
    settings.strategy = args.strategy;
    settings.secrets = secrets;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(cluster: Option<&str>, admin: Option<&str>, insecure: bool) -> TokenArgs {
        TokenArgs {
            cluster_token: cluster.map(str::to_owned),
            admin_token: admin.map(str::to_owned),
            insecure_no_token: insecure,
        }
    }

    #[test]
    fn loopback_hosts_are_told_apart() {
        for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "10.0.0.5", "example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
        assert_eq!(host_of("0.0.0.0:5000"), "0.0.0.0");
        assert_eq!(host_of("[::1]:5000"), "[::1]");
    }

    #[test]
    fn beyond_loopback_a_role_needs_its_tokens() {
        let open = tokens(None, None, false);
        let error = secrets_of("front-end", &open, "0.0.0.0", Needs::BOTH, None).unwrap_err();
        assert!(
            error.contains("MEMRING_CLUSTER_TOKEN and MEMRING_ADMIN_TOKEN"),
            "{error}"
        );
        // On loopback the calls may stay open.
        let secrets = secrets_of("front-end", &open, "127.0.0.1", Needs::BOTH, None).unwrap();
        assert!(secrets.cluster.is_none() && secrets.admin.is_none());
        // Or when the operator says so.
        let insecure = tokens(None, None, true);
        assert!(secrets_of("front-end", &insecure, "0.0.0.0", Needs::BOTH, None).is_ok());
        // A node needs no admin token.
        let cluster_only = tokens(Some("cluster-secret-0001"), None, false);
        let node = Needs::CLUSTER;
        assert!(secrets_of("cache node", &cluster_only, "0.0.0.0", node, None).is_ok());
        assert!(secrets_of("manager", &cluster_only, "0.0.0.0", Needs::BOTH, None).is_err());
    }

    #[test]
    fn a_generated_cluster_token_is_used_unless_one_is_given() {
        let generated = Token::new("generated-secret-01").unwrap();
        let admin = tokens(None, Some("admin-secret-00001"), false);
        let secrets = secrets_of(
            "memring up",
            &admin,
            "0.0.0.0",
            Needs::BOTH,
            Some(generated.clone()),
        );
        assert_eq!(secrets.unwrap().cluster, Some(generated.clone()));
        let given = tokens(
            Some("cluster-secret-0001"),
            Some("admin-secret-00001"),
            false,
        );
        let secrets = secrets_of(
            "memring up",
            &given,
            "0.0.0.0",
            Needs::BOTH,
            Some(generated),
        )
        .unwrap();
        assert_eq!(secrets.cluster.unwrap().expose(), "cluster-secret-0001");
    }

    #[test]
    fn a_bad_token_names_its_setting() {
        let short = tokens(Some("short"), None, false);
        let error = secrets_of("cache node", &short, "127.0.0.1", Needs::BOTH, None).unwrap_err();
        assert!(error.starts_with("MEMRING_CLUSTER_TOKEN: "), "{error}");
    }
}
