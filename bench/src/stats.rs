//! Medians and percentiles of measured samples.

/// The `q`-quantile (0.0..=1.0) of `samples` by nearest rank; `None` when empty.
pub(crate) fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    // Nearest rank: the smallest value with at least q of the samples at or below it.
    let rank = (q.clamp(0.0, 1.0) * last as f64).round() as usize;
    sorted.get(rank.min(last)).copied()
}

/// The median of `samples`.
pub(crate) fn median(samples: &[f64]) -> Option<f64> {
    quantile(samples, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quantiles_by_nearest_rank() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&hundred, 0.99), Some(99.0));
        assert_eq!(quantile(&hundred, 1.0), Some(100.0));
        assert_eq!(quantile(&hundred, 0.0), Some(1.0));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }
}
