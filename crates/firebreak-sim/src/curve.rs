//! The synthetic learning-curve model.
//!
//! For a configuration whose final value is `f` (e.g. the mean over a table's
//! seeds), the value after `t` epochs is
//!
//! ```text
//! value(t) = f − (f − start) · e^(−t/τ) + σ · e^(−t/τ) · z_t
//! ```
//!
//! where `start` is the value of an untrained model (10 for 10-class accuracy in
//! percent), `τ = τ_min + (τ_max − τ_min) · h₁` the configuration's learning-time
//! constant, an epoch costs `c_min + (c_max − c_min) · h₂` simulated seconds, and
//! `z_t` is a standard normal draw seeded by the campaign seed, the trial and the
//! epoch. `h₁` and `h₂` are two independent numbers in `[0, 1)` hashed from the
//! configuration's parameters, so the same configuration always learns at the same
//! pace and costs the same (bigger cells are not modelled as slower: the table
//! gives no cost). The noise fades as training converges, so late rungs rank
//! configurations more faithfully than early ones — the property multi-fidelity
//! schedulers rely on.

use firebreak_core::{Params, Rng, derive_seed};

/// The model's constants.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveModel {
    /// The value of an untrained model.
    pub start: f64,
    /// The fastest learning-time constant, in epochs.
    pub tau_min: f64,
    /// The slowest.
    pub tau_max: f64,
    /// The cheapest epoch, in simulated seconds.
    pub epoch_seconds_min: f64,
    /// The dearest.
    pub epoch_seconds_max: f64,
    /// The noise's standard deviation at epoch 0.
    pub noise: f64,
}

impl Default for CurveModel {
    /// Constants for NAS-Bench-201-like accuracies in percent over 200 epochs.
    fn default() -> Self {
        CurveModel {
            start: 10.0,
            tau_min: 5.0,
            tau_max: 40.0,
            epoch_seconds_min: 10.0,
            epoch_seconds_max: 30.0,
            noise: 4.0,
        }
    }
}

/// One configuration's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The value it converges to.
    pub final_value: f64,
    /// Its value at epoch 0.
    pub start: f64,
    /// Its learning-time constant, in epochs.
    pub tau: f64,
    /// Simulated seconds per epoch.
    pub epoch_seconds: f64,
    noise: f64,
    seed: u64,
}

/// A number in `[0, 1)` from the parameters and a label (FNV-1a over their text).
fn hash_unit(params: &Params, label: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ label;
    for (name, value) in params {
        for byte in name
            .bytes()
            .chain(value.to_plain_string().bytes())
            .chain([0])
        {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    Rng::new(h).next_f64()
}

impl CurveModel {
    /// The curve of a configuration with this final value; `seed` seeds its noise.
    pub fn curve(&self, params: &Params, final_value: f64, seed: u64) -> Curve {
        Curve {
            final_value,
            start: self.start,
            tau: self.tau_min + (self.tau_max - self.tau_min) * hash_unit(params, 1),
            epoch_seconds: self.epoch_seconds_min
                + (self.epoch_seconds_max - self.epoch_seconds_min) * hash_unit(params, 2),
            noise: self.noise,
            seed,
        }
    }
}

impl Curve {
    /// The noiseless value after `epoch` epochs.
    pub fn mean(&self, epoch: u64) -> f64 {
        let decay = (-(epoch as f64) / self.tau).exp();
        self.final_value - (self.final_value - self.start) * decay
    }

    /// The value reported after `epoch` epochs, noise included.
    pub fn value(&self, epoch: u64) -> f64 {
        let decay = (-(epoch as f64) / self.tau).exp();
        let mut rng = Rng::new(derive_seed(self.seed, &[epoch]));
        // Box–Muller: one standard normal draw.
        let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
        let u2 = rng.next_f64();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        self.mean(epoch) + self.noise * decay * z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_core::ParamValue;

    #[test]
    fn curves_rise_to_their_final_value_and_noise_fades() {
        let mut params = Params::new();
        params.insert("op".into(), ParamValue::Str("conv".into()));
        let curve = CurveModel::default().curve(&params, 90.0, 7);
        assert_eq!(curve.mean(0), 10.0);
        assert!(curve.mean(10) < curve.mean(50));
        assert!((curve.mean(400) - 90.0).abs() < 1e-3);
        assert!((curve.value(400) - 90.0).abs() < 1e-3, "noise fades");
        assert_eq!(curve.value(3), curve.value(3), "seeded");
        let same = CurveModel::default().curve(&params, 50.0, 8);
        assert_eq!(
            (same.tau, same.epoch_seconds),
            (curve.tau, curve.epoch_seconds)
        );
    }
}
