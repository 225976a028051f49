//! Criterion settings shared by the bench targets (a subdirectory, so cargo
//! does not take it for a bench of its own).

use std::time::Duration;

use criterion::Criterion;

/// Short runs (0.5 s warm-up, 2 s measuring, 30 samples): enough to compare
/// on a shared machine without tying it up.
pub fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}
