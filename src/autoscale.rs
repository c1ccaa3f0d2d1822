//! The auto-scale policy of the manager: a pure function from one window's GETs and
//! hits to the next pool size.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::limits::{POOL_NODES_MAX, POOL_NODES_MIN};
/// Largest expand ratio accepted: past 8 any growth is straight to the maximum.
pub const EXPAND_RATIO_MAX: f64 = 8.0;

/// The documented parameters of automatic mode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoParams {
    pub max_miss_rate_threshold: f64,
    pub min_miss_rate_threshold: f64,
    pub expand_ratio: f64,
    pub shrink_ratio: f64,
}

impl Default for AutoParams {
    fn default() -> Self {
        AutoParams {
            max_miss_rate_threshold: 0.6,
            min_miss_rate_threshold: 0.4,
            expand_ratio: 1.5,
            shrink_ratio: 0.5,
        }
    }
}

/// Why parameters were refused.
#[derive(Debug, Error, PartialEq)]
pub enum ParamsError {
    #[error("every parameter must be a finite number")]
    NotFinite,
    #[error("thresholds must satisfy 0 <= min_miss_rate_threshold < max_miss_rate_threshold <= 1")]
    Thresholds,
    #[error("expand_ratio must be greater than 1 and at most 8")]
    Expand,
    #[error("shrink_ratio must be greater than 0 and less than 1")]
    Shrink,
}

impl AutoParams {
    pub fn validate(&self) -> Result<(), ParamsError> {
        let all = [
            self.max_miss_rate_threshold,
            self.min_miss_rate_threshold,
            self.expand_ratio,
            self.shrink_ratio,
        ];
        if !all.iter().all(|v| v.is_finite()) {
            return Err(ParamsError::NotFinite);
        }
        let (min, max) = (self.min_miss_rate_threshold, self.max_miss_rate_threshold);
        if !(0.0 <= min && min < max && max <= 1.0) {
            return Err(ParamsError::Thresholds);
        }
        if !(self.expand_ratio > 1.0 && self.expand_ratio <= EXPAND_RATIO_MAX) {
            return Err(ParamsError::Expand);
        }
        if !(self.shrink_ratio > 0.0 && self.shrink_ratio < 1.0) {
            return Err(ParamsError::Shrink);
        }
        Ok(())
    }
}

/// The pool size after a window with `gets` GETs of which `hits` hit.
///
/// No GETs means no change (an idle pool says nothing about its miss rate). A miss
/// rate above the upper threshold multiplies the size by the expand ratio, one below
/// the lower threshold by the shrink ratio; the result is rounded (half away from
/// zero) and clipped to 1..=8. A decision to grow or shrink always moves by at least
/// one node within those limits, so that a small pool with a small ratio still acts.
pub fn decide(params: &AutoParams, size: usize, gets: u64, hits: u64) -> usize {
    let size = size.clamp(POOL_NODES_MIN, POOL_NODES_MAX);
    if gets == 0 {
        return size;
    }
    let miss_rate = (gets - hits.min(gets)) as f64 / gets as f64;
    let clip = |n: f64| (n.round() as usize).clamp(POOL_NODES_MIN, POOL_NODES_MAX);
    if miss_rate > params.max_miss_rate_threshold {
        clip(size as f64 * params.expand_ratio).max((size + 1).min(POOL_NODES_MAX))
    } else if miss_rate < params.min_miss_rate_threshold {
        clip(size as f64 * params.shrink_ratio).min(size.saturating_sub(1).max(POOL_NODES_MIN))
    } else {
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: AutoParams = AutoParams {
        max_miss_rate_threshold: 0.6,
        min_miss_rate_threshold: 0.4,
        expand_ratio: 1.5,
        shrink_ratio: 0.5,
    };

    #[test]
    fn documented_examples() {
        assert_eq!(decide(&P, 4, 100, 10), 6);
        assert_eq!(decide(&P, 4, 100, 90), 2);
        assert_eq!(decide(&P, 8, 100, 0), 8);
        assert_eq!(decide(&P, 1, 100, 100), 1);
        assert_eq!(decide(&P, 3, 0, 0), 3);
        assert_eq!(decide(&P, 3, 100, 50), 3);
        // 1 * 1.5 rounds to 2; 1 * 1.4 would round to 1 but still grows by one.
        assert_eq!(decide(&P, 1, 10, 0), 2);
        let slow = AutoParams {
            expand_ratio: 1.2,
            shrink_ratio: 0.9,
            ..P
        };
        assert_eq!(decide(&slow, 2, 10, 0), 3);
        assert_eq!(decide(&slow, 2, 10, 10), 1);
        assert_eq!(decide(&P, 6, 10, 0), 8);
    }

    #[test]
    fn validation() {
        assert_eq!(P.validate(), Ok(()));
        let bad = |p: AutoParams| p.validate().unwrap_err();
        assert_eq!(
            bad(AutoParams {
                min_miss_rate_threshold: 0.7,
                ..P
            }),
            ParamsError::Thresholds
        );
        assert_eq!(
            bad(AutoParams {
                max_miss_rate_threshold: 1.1,
                ..P
            }),
            ParamsError::Thresholds
        );
        assert_eq!(
            bad(AutoParams {
                min_miss_rate_threshold: -0.1,
                ..P
            }),
            ParamsError::Thresholds
        );
        assert_eq!(
            bad(AutoParams {
                expand_ratio: 1.0,
                ..P
            }),
            ParamsError::Expand
        );
        assert_eq!(
            bad(AutoParams {
                expand_ratio: 9.0,
                ..P
            }),
            ParamsError::Expand
        );
        assert_eq!(
            bad(AutoParams {
                shrink_ratio: 1.0,
                ..P
            }),
            ParamsError::Shrink
        );
        assert_eq!(
            bad(AutoParams {
                shrink_ratio: 0.0,
                ..P
            }),
            ParamsError::Shrink
        );
        assert_eq!(
            bad(AutoParams {
                shrink_ratio: f64::NAN,
                ..P
            }),
            ParamsError::NotFinite
        );
    }

    proptest! {
        #[test]
        fn stays_in_range_and_moves_the_right_way(size in 1usize..=8, gets in 0u64..1000, hits in 0u64..1000,
            min in 0.0f64..0.5, gap in 0.01f64..0.5, expand in 1.01f64..8.0, shrink in 0.01f64..0.99) {
            let params = AutoParams { min_miss_rate_threshold: min, max_miss_rate_threshold: (min + gap).min(1.0),
                expand_ratio: expand, shrink_ratio: shrink };
            let next = decide(&params, size, gets, hits);
            prop_assert!((POOL_NODES_MIN..=POOL_NODES_MAX).contains(&next));
            if gets == 0 { prop_assert_eq!(next, size); return Ok(()); }
            let miss = (gets - hits.min(gets)) as f64 / gets as f64;
            if miss > params.max_miss_rate_threshold {
                prop_assert!(next > size || size == POOL_NODES_MAX);
            } else if miss < params.min_miss_rate_threshold {
                prop_assert!(next < size || size == POOL_NODES_MIN);
            } else {
                prop_assert_eq!(next, size);
            }
        }
    }
}
