//! Sobol' quasi-random designs: point `i` of the Sobol' sequence in as many
//! dimensions as the space has parameters, one coordinate per parameter (in the
//! space's parents-first order), mapped through [`crate::cube`]: numerical
//! parameters on their (log) scale, ints and stepped floats to the value whose
//! cell holds the coordinate, categorical ones to choice `⌊u·k⌋`. Inactive
//! (conditional) parameters are dropped, so their coordinates go unused.
//!
//! The sequence is taken in natural (not Gray-code) order: each prefix of `2^k`
//! points is the same set either way, and natural order makes point `i` a pure
//! function of `i`. Each proposal carries its point (and shift seed) as
//! structured, versioned state (`{"v": 1, "sobol": {"point": i, "seed": "…"}}`,
//! recorded in its `trial_proposed` entry and kept as the trial's
//! `proposer_state`); the rationale (`sobol: point i …`) is for people and never
//! read back, except for trials recorded before proposals carried state (see
//! [`point_of`]). The next point is one past the highest point any earlier
//! trial's state names, so trials queued by people or retries in between do not
//! shift the design, and concurrent workers (who see each other's running trials)
//! get distinct points.
//!
//! With `scramble = true` (the default) every coordinate gets a random digital
//! shift (an XOR with a random 32-bit word per dimension), which keeps each
//! `2^k`-prefix stratified but moves the design off the corner-heavy unscrambled
//! points. The shift's seed is drawn from the first proposal's `Rng` and recorded
//! in every proposal's state (as 16 hexadecimal digits: a JSON number, which the
//! ledger's canonical form writes as a double, would not keep 64 bits), from
//! where later proposals (and a resumed campaign) read it back. The first point is not skipped
//! by default (`skip_first = false`): skipping breaks the stratification of the
//! `2^k` prefixes, and with scrambling point 0 is no corner. Unscrambled, point 0
//! is the lower corner of the space (every parameter at its low bound, the first
//! choice of each categorical one); `skip_first = true` starts at point 1.
//!
//! Direction numbers: S. Joe and F. Y. Kuo, "Constructing Sobol sequences with
//! better two-dimensional projections", SIAM J. Sci. Comput. 30 (2008) 2635–2654,
//! the table `new-joe-kuo-6.21201` (<https://web.maths.unsw.edu.au/~fkuo/sobol/>),
//! dimensions 2 to 40; dimension 1 is the van der Corput sequence.

use firebreak_core::{Rng, SearchSpace, Trial};

use crate::SearchError;
use crate::cube::value_at;
use crate::proposer::{History, Proposal, Proposer};

/// Joe and Kuo's rows for dimensions 2..=40: the degree `s` of the primitive
/// polynomial, its inner coefficients `a` (bits, most significant first), and the
/// initial direction numbers `m_1..m_s`.
const JOE_KUO: [(u32, u32, &[u64]); 39] = [
    (1, 0, &[1]),
    (2, 1, &[1, 3]),
    (3, 1, &[1, 3, 1]),
    (3, 2, &[1, 1, 1]),
    (4, 1, &[1, 1, 3, 3]),
    (4, 4, &[1, 3, 5, 13]),
    (5, 2, &[1, 1, 5, 5, 17]),
    (5, 4, &[1, 1, 5, 5, 5]),
    (5, 7, &[1, 1, 7, 11, 19]),
    (5, 11, &[1, 1, 5, 1, 1]),
    (5, 13, &[1, 1, 1, 3, 11]),
    (5, 14, &[1, 3, 5, 5, 31]),
    (6, 1, &[1, 3, 3, 9, 7, 49]),
    (6, 13, &[1, 1, 1, 15, 21, 21]),
    (6, 16, &[1, 3, 1, 13, 27, 49]),
    (6, 19, &[1, 1, 1, 15, 7, 5]),
    (6, 22, &[1, 3, 1, 15, 13, 25]),
    (6, 25, &[1, 1, 5, 5, 19, 61]),
    (7, 1, &[1, 3, 7, 11, 23, 15, 103]),
    (7, 4, &[1, 3, 7, 13, 13, 15, 69]),
    (7, 7, &[1, 1, 3, 13, 7, 35, 63]),
    (7, 8, &[1, 3, 5, 9, 1, 25, 53]),
    (7, 14, &[1, 3, 1, 13, 9, 35, 107]),
    (7, 19, &[1, 3, 1, 5, 27, 61, 31]),
    (7, 21, &[1, 1, 5, 11, 19, 41, 61]),
    (7, 28, &[1, 3, 5, 3, 3, 13, 69]),
    (7, 31, &[1, 1, 7, 13, 1, 19, 1]),
    (7, 32, &[1, 3, 7, 5, 13, 19, 59]),
    (7, 37, &[1, 1, 3, 9, 25, 29, 41]),
    (7, 41, &[1, 3, 5, 13, 23, 1, 55]),
    (7, 42, &[1, 3, 7, 3, 13, 59, 17]),
    (7, 50, &[1, 3, 1, 3, 5, 53, 69]),
    (7, 55, &[1, 1, 5, 5, 23, 33, 13]),
    (7, 56, &[1, 1, 7, 7, 1, 61, 123]),
    (7, 59, &[1, 1, 7, 9, 13, 61, 49]),
    (7, 62, &[1, 3, 3, 5, 3, 55, 33]),
    (8, 14, &[1, 3, 1, 15, 31, 13, 49, 245]),
    (8, 21, &[1, 3, 5, 15, 31, 59, 63, 97]),
    (8, 22, &[1, 3, 1, 11, 11, 11, 77, 249]),
];

/// The most dimensions (parameters) this build's table covers.
pub const SOBOL_MAX_DIMENSIONS: usize = JOE_KUO.len() + 1;

const BITS: usize = 32;

/// The 32 direction numbers of dimension `d` (0-based), as 32-bit binary
/// fractions: `v[j] = m_{j+1} · 2^(31−j)`, with the `m` of later bits from the
/// Bratley–Fox recurrence
/// `m_k = 2^s m_{k−s} ⊕ m_{k−s} ⊕ (⊕_{i=1}^{s−1} 2^i a_i m_{k−i})`.
fn directions(d: usize) -> [u32; BITS] {
    let mut v = [0u32; BITS];
    if d == 0 {
        for (j, slot) in v.iter_mut().enumerate() {
            *slot = 1 << (BITS - 1 - j);
        }
        return v;
    }
    let (s, a, initial) = JOE_KUO[d - 1];
    let s = s as usize;
    let mut m = [0u64; BITS];
    m[..s].copy_from_slice(initial);
    for k in s..BITS {
        let mut next = m[k - s] ^ (m[k - s] << s);
        for i in 1..s {
            if (a >> (s - 1 - i)) & 1 == 1 {
                next ^= m[k - i] << i;
            }
        }
        m[k] = next;
    }
    for j in 0..BITS {
        // m_{j+1} < 2^(j+1), so the shifted value fits in 32 bits.
        v[j] = (m[j] << (BITS - 1 - j)) as u32;
    }
    v
}

/// Coordinate `d` of point `index`, as a 32-bit binary fraction.
fn coordinate(directions: &[u32; BITS], index: u64) -> u32 {
    let mut x = 0u32;
    let mut i = index;
    let mut j = 0;
    while i > 0 && j < BITS {
        if i & 1 == 1 {
            x ^= directions[j];
        }
        i >>= 1;
        j += 1;
    }
    x
}

/// The Sobol' design proposer; see the module documentation.
#[derive(Debug, Clone)]
pub struct SobolProposer {
    scramble: bool,
    skip_first: bool,
    directions: Vec<[u32; BITS]>,
}

impl SobolProposer {
    /// A Sobol' design over `space`, with a random digital shift when `scramble`,
    /// starting at point 1 when `skip_first`.
    pub fn new(space: &SearchSpace, scramble: bool, skip_first: bool) -> Result<Self, SearchError> {
        let dimensions = space.parameters().len();
        if dimensions > SOBOL_MAX_DIMENSIONS {
            return Err(SearchError::Unsupported(format!(
                "sobol supports at most {SOBOL_MAX_DIMENSIONS} parameters, the space has {dimensions}; hint: use sampler = \"random\" or \"tpe\" for larger spaces"
            )));
        }
        Ok(SobolProposer {
            scramble,
            skip_first,
            directions: (0..dimensions).map(directions).collect(),
        })
    }

    /// Point `index` in `[0, 1)^d`, shifted by `shifts` when given.
    fn point(&self, index: u64, shifts: Option<&[u32]>) -> Vec<f64> {
        self.directions
            .iter()
            .enumerate()
            .map(|(d, v)| {
                let x = coordinate(v, index) ^ shifts.map_or(0, |s| s[d]);
                f64::from(x) / (1u64 << BITS) as f64
            })
            .collect()
    }
}

/// The version of the state Sobol' attaches to its proposals.
const STATE_VERSION: u64 = 1;

/// The state recorded with a proposal of point `index`, shifted by `seed`'s
/// words when scrambled.
fn state_value(index: u64, seed: Option<u64>) -> serde_json::Value {
    let mut sobol = serde_json::json!({"point": index});
    if let Some(seed) = seed {
        sobol["seed"] = format!("{seed:016x}").into();
    }
    serde_json::json!({"v": STATE_VERSION, "sobol": sobol})
}

/// The point index and scrambling seed of a trial: from its `proposer_state`
/// (another proposer's state, or another version, names none). A trial without
/// state that Sobol' proposed was recorded before proposals carried state
/// (database schema 6 and older): its rationale, in the format of that time, is
/// read instead, so such campaigns resume where they were.
fn point_of(trial: &Trial) -> Option<(u64, Option<u64>)> {
    match &trial.proposer_state {
        Some(state) => {
            if state.get("v")?.as_u64()? != STATE_VERSION {
                return None;
            }
            let sobol = state.get("sobol")?;
            let index = sobol.get("point")?.as_u64()?;
            let seed = match sobol.get("seed") {
                Some(seed) => Some(u64::from_str_radix(seed.as_str()?, 16).ok()?),
                None => None,
            };
            Some((index, seed))
        }
        None if trial.proposer == "sobol" => parse_legacy(&trial.rationale),
        None => None,
    }
}

/// The point index and scrambling seed a Sobol' rationale named before proposals
/// carried state; frozen in that format, only for such trials.
fn parse_legacy(rationale: &str) -> Option<(u64, Option<u64>)> {
    let rest = rationale.strip_prefix("sobol: point ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let seed = rest
        .split_once("seed ")
        .map(|(_, s)| {
            s.chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        })
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok());
    Some((digits.parse().ok()?, seed))
}

impl Proposer for SobolProposer {
    fn name(&self) -> &'static str {
        "sobol"
    }

    fn infer_relative_space(&mut self, space: &SearchSpace, _history: &History<'_>) -> Vec<String> {
        space.parameters().iter().map(|p| p.name.clone()).collect()
    }

    fn sample_relative(
        &mut self,
        space: &SearchSpace,
        history: &History<'_>,
        _relative: &[String],
        rng: &mut Rng,
    ) -> Proposal {
        let mut next = u64::from(self.skip_first);
        let mut seed = None;
        for trial in history.trials {
            if let Some((index, s)) = point_of(trial) {
                next = next.max(index + 1);
                seed = seed.or(s);
            }
        }
        let (shifts, rationale, seed) = if self.scramble {
            let seed = seed.unwrap_or_else(|| rng.next_u64());
            let mut shift_rng = Rng::new(seed);
            let shifts: Vec<u32> = (0..self.directions.len())
                .map(|_| (shift_rng.next_u64() >> 32) as u32)
                .collect();
            (
                Some(shifts),
                format!("sobol: point {next} (scrambled, seed {seed:016x})"),
                Some(seed),
            )
        } else {
            (None, format!("sobol: point {next}"), None)
        };
        let u = self.point(next, shifts.as_deref());
        let params = space
            .parameters()
            .iter()
            .zip(u)
            .map(|(p, u)| (p.name.clone(), value_at(&p.distribution, u)))
            .collect();
        Proposal {
            params,
            rationale,
            state: Some(state_value(next, seed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use firebreak_core::Params;

    use super::*;

    fn unit(x: u32) -> f64 {
        f64::from(x) / 4_294_967_296.0
    }

    #[test]
    fn the_first_points_are_the_known_ones() {
        // The first eight points in three dimensions (as a set: scipy's
        // `Sobol(d=3, scramble=False)` lists them in Gray-code order).
        let v: Vec<[u32; BITS]> = (0..3).map(directions).collect();
        let mut points: Vec<[f64; 3]> = (0..8)
            .map(|i| [0, 1, 2].map(|d| unit(coordinate(&v[d], i))))
            .collect();
        let mut expected: Vec<[f64; 3]> = vec![
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.75, 0.25, 0.25],
            [0.25, 0.75, 0.75],
            [0.375, 0.375, 0.625],
            [0.875, 0.875, 0.125],
            [0.625, 0.125, 0.875],
            [0.125, 0.625, 0.375],
        ];
        points.sort_by(|a, b| a[0].total_cmp(&b[0]));
        expected.sort_by(|a, b| a[0].total_cmp(&b[0]));
        assert_eq!(points, expected);
    }

    #[test]
    fn every_direction_number_is_a_valid_binary_fraction() {
        // m_k is odd and below 2^k: v[j] has its lowest set bit at 31 − j.
        for d in 0..SOBOL_MAX_DIMENSIONS {
            let v = directions(d);
            for (j, x) in v.iter().enumerate() {
                assert_eq!(x.trailing_zeros() as usize, BITS - 1 - j, "d {d}, j {j}");
            }
        }
    }

    #[test]
    fn legacy_rationales_round_trip() {
        assert_eq!(parse_legacy("sobol: point 12"), Some((12, None)));
        assert_eq!(
            parse_legacy("sobol: point 3 (scrambled, seed 00000000000000ff)"),
            Some((3, Some(255)))
        );
        assert_eq!(parse_legacy("tpe: x"), None);
    }

    #[test]
    fn the_point_and_seed_come_from_the_state_not_the_rationale() {
        let legacy = "sobol: point 3 (scrambled, seed 00000000000000ff)";
        let mut trial = Trial::queued(0, Params::new(), "sobol", "reworded for people");
        // Every bit of a 64-bit seed survives.
        trial.proposer_state = Some(state_value(7, Some(u64::MAX - 1)));
        assert_eq!(point_of(&trial), Some((7, Some(u64::MAX - 1))));
        trial.rationale = legacy.into();
        assert_eq!(point_of(&trial), Some((7, Some(u64::MAX - 1))));
        trial.proposer_state = Some(state_value(7, None));
        assert_eq!(point_of(&trial), Some((7, None)));
        // Another version, or another proposer's state, names no point.
        trial.proposer_state = Some(serde_json::json!({"v": 2, "sobol": {"point": 7}}));
        assert_eq!(point_of(&trial), None);
        trial.proposer_state = Some(serde_json::json!({"v": 1, "cmaes": {"generation": 7}}));
        assert_eq!(point_of(&trial), None);
        // Without state: the legacy rationale, and only on Sobol's own trials.
        trial.proposer_state = None;
        assert_eq!(point_of(&trial), Some((3, Some(255))));
        trial.proposer = "enqueued".into();
        assert_eq!(point_of(&trial), None);
    }
}
