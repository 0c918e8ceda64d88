//! Synthetic curriculum skills: procedural generators of token sequences with a
//! difficulty knob — modular addition, parity, copy, reverse, sorting and
//! multi-digit addition — and the schedules that decide which difficulty levels
//! a training epoch draws from. A skill's levels are disjoint sets of examples
//! (a level is an exact length, digit count or operand band), so training on
//! easy levels and testing on hard ones cannot leak test examples into training.
//!
//! Encoding, for an encoder-only model: `question, SEP, MASK × answer length`,
//! padded with `PAD` to the skill's fixed length; the labels are the answer's
//! tokens at the `MASK` positions and [`IGNORE`] elsewhere. Token ids: `PAD` 0,
//! `SEP` 1, `MASK` 2, `PLUS` 3, symbol `v` is `4 + v`.

use std::collections::HashSet;

use firebreak_core::{Rng, derive_seed};

use crate::tabular::shuffle;
use crate::{Dataset, IGNORE, Shape, Split};

const PAD: u32 = 0;
const SEP: u32 = 1;
const MASK: u32 = 2;
const PLUS: u32 = 3;
const SYMBOLS: u32 = 4;

/// Examples per split of a skill's bundled dataset.
const TRAIN: usize = 4000;
const VAL: usize = 500;
const TEST: usize = 1000;

/// A skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skill {
    /// (a + b) mod 23; level ℓ: the larger operand lies in the ℓ-th of 5 bands.
    ModAdd,
    /// The parity of a bit string; level ℓ: 2ℓ bits (up to 16).
    Parity,
    /// Copy a digit string; level ℓ: length ℓ (up to 8).
    Copy,
    /// Reverse a digit string; level ℓ: length ℓ (up to 8).
    Reverse,
    /// Sort a digit string; level ℓ: length ℓ (up to 8).
    Sort,
    /// Add two numbers; level ℓ: ℓ digits each (up to 5).
    Addition,
}

const MODULUS: u32 = 23;

impl Skill {
    /// The skill called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "mod_add" => Skill::ModAdd,
            "parity" => Skill::Parity,
            "copy" => Skill::Copy,
            "reverse" => Skill::Reverse,
            "sort" => Skill::Sort,
            "addition" => Skill::Addition,
            _ => return None,
        })
    }

    /// The hardest level.
    pub fn max_level(&self) -> u32 {
        match self {
            Skill::ModAdd | Skill::Addition => 5,
            Skill::Parity | Skill::Copy | Skill::Reverse | Skill::Sort => 8,
        }
    }

    /// The levels a skill's dataset trains on (the easier half); the rest are test levels.
    pub fn train_levels(&self) -> u32 {
        self.max_level().div_ceil(2)
    }

    /// Tokens per example.
    pub fn length(&self) -> usize {
        match self {
            Skill::ModAdd => 5,
            Skill::Parity => 18,
            Skill::Copy | Skill::Reverse | Skill::Sort => 17,
            Skill::Addition => 18,
        }
    }

    /// Distinct token ids.
    pub fn vocab(&self) -> usize {
        SYMBOLS as usize
            + match self {
                Skill::ModAdd => MODULUS as usize,
                Skill::Parity => 2,
                _ => 10,
            }
    }

    /// One example of `level`: its tokens and labels.
    fn example(&self, level: u32, rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
        let digit = |rng: &mut Rng| rng.below(10) as u32;
        let (question, answer): (Vec<u32>, Vec<u32>) = match self {
            Skill::ModAdd => {
                let band = MODULUS.div_ceil(5);
                let lo = (level - 1) * band;
                let hi = (level * band).min(MODULUS);
                let big = lo + rng.below(u64::from(hi - lo)) as u32;
                let small = rng.below(u64::from(big) + 1) as u32;
                let (a, b) = if rng.below(2) == 0 {
                    (big, small)
                } else {
                    (small, big)
                };
                (vec![a, PLUS, b], vec![(a + b) % MODULUS])
            }
            Skill::Parity => {
                let bits: Vec<u32> = (0..2 * level).map(|_| rng.below(2) as u32).collect();
                let parity = bits.iter().sum::<u32>() % 2;
                (bits, vec![parity])
            }
            Skill::Copy | Skill::Reverse | Skill::Sort => {
                let s: Vec<u32> = (0..level).map(|_| digit(rng)).collect();
                let mut answer = s.clone();
                match self {
                    Skill::Reverse => answer.reverse(),
                    Skill::Sort => answer.sort_unstable(),
                    _ => {}
                }
                (s, answer)
            }
            Skill::Addition => {
                let number = |rng: &mut Rng| -> Vec<u32> {
                    let mut d: Vec<u32> = (0..level).map(|_| digit(rng)).collect();
                    if level > 1 && d[0] == 0 {
                        d[0] = 1 + rng.below(9) as u32;
                    }
                    d
                };
                let (a, b) = (number(rng), number(rng));
                let value = |d: &[u32]| d.iter().fold(0u64, |v, x| v * 10 + u64::from(*x));
                let sum = value(&a) + value(&b);
                let answer: Vec<u32> = (0..=level)
                    .rev()
                    .map(|i| ((sum / 10u64.pow(i)) % 10) as u32)
                    .collect();
                let mut question = a;
                question.push(PLUS);
                question.extend(b);
                (question, answer)
            }
        };
        let symbol = |v: u32| if v == PLUS { PLUS } else { SYMBOLS + v };
        let mut x: Vec<u32> = question.into_iter().map(symbol).collect();
        x.push(SEP);
        let mut y = vec![IGNORE; x.len()];
        for a in answer {
            x.push(MASK);
            y.push(SYMBOLS + a);
        }
        x.resize(self.length(), PAD);
        y.resize(self.length(), IGNORE);
        (x, y)
    }

    /// `n` distinct examples of `level` (fewer when the level has fewer), none of
    /// them in `exclude`, drawn with `seed`.
    pub fn generate(&self, level: u32, n: usize, seed: u64, exclude: &HashSet<Vec<u32>>) -> Split {
        let mut rng = Rng::new(derive_seed(seed, &[u64::from(level)]));
        let mut seen = HashSet::new();
        let mut split = Split {
            x: Vec::new(),
            y: Vec::new(),
            n: 0,
            levels: Vec::new(),
        };
        let mut misses = 0;
        while split.n < n && misses < 20 * n.max(100) {
            let (x, y) = self.example(level, &mut rng);
            if exclude.contains(&x) || !seen.insert(x.clone()) {
                misses += 1;
                continue;
            }
            split.x.extend(x.iter().map(|&t| t as f32));
            split.y.extend(y);
            split.levels.push(level);
            split.n += 1;
        }
        split
    }

    /// The skill's bundled dataset: train and validation from levels
    /// 1..=[`train_levels`](Self::train_levels) (disjoint), test from the harder
    /// levels; examples split evenly over levels.
    pub fn dataset(&self) -> Dataset {
        let seed = 0xC0FF_EE00 ^ *self as u64;
        let easy = self.train_levels();
        let mut train = Split::empty();
        let mut val = Split::empty();
        let mut test = Split::empty();
        for level in 1..=easy {
            let per = (TRAIN + VAL) / easy as usize;
            let mut pool = self.generate(level, per, seed, &HashSet::new());
            let share = (pool.n * VAL) / (TRAIN + VAL);
            let mut rng = Rng::new(seed ^ u64::from(level));
            pool.shuffle(&mut rng, self.length());
            let (v, t) = pool.split_at(share, self.length());
            val.append(v);
            train.append(t);
        }
        for level in easy + 1..=self.max_level() {
            let per = TEST / (self.max_level() - easy) as usize;
            test.append(self.generate(level, per, seed, &HashSet::new()));
        }
        Dataset {
            name: format!("{self:?}").to_lowercase(),
            shape: Shape::Sequence {
                length: self.length(),
                vocab: self.vocab(),
            },
            classes: self.vocab(),
            targets: self.length(),
            train,
            val,
            test,
        }
    }
}

impl Split {
    fn empty() -> Self {
        Split {
            x: Vec::new(),
            y: Vec::new(),
            n: 0,
            levels: Vec::new(),
        }
    }

    /// Adds `other`'s examples after this split's.
    pub(crate) fn append(&mut self, other: Split) {
        self.x.extend(other.x);
        self.y.extend(other.y);
        self.levels.extend(other.levels);
        self.n += other.n;
    }

    fn shuffle(&mut self, rng: &mut Rng, width: usize) {
        let mut order: Vec<usize> = (0..self.n).collect();
        shuffle(&mut order, rng);
        *self = self.rows(&order, width);
    }

    fn split_at(&self, at: usize, width: usize) -> (Split, Split) {
        let all: Vec<usize> = (0..self.n).collect();
        (self.rows(&all[..at], width), self.rows(&all[at..], width))
    }

    /// The examples at `rows` (width: values per example, labels per example).
    pub fn rows(&self, rows: &[usize], width: usize) -> Split {
        let targets = self.y.len().checked_div(self.n).unwrap_or(0);
        Split {
            x: rows
                .iter()
                .flat_map(|&r| self.x[r * width..(r + 1) * width].iter().copied())
                .collect(),
            y: rows
                .iter()
                .flat_map(|&r| self.y[r * targets..(r + 1) * targets].iter().copied())
                .collect(),
            n: rows.len(),
            levels: if self.levels.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&r| self.levels[r]).collect()
            },
        }
    }
}

/// Which training levels an epoch draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every training level, evenly, throughout.
    Fixed,
    /// A linear ramp: level ℓ of L joins once `progress ≥ (ℓ−1)/L`.
    Linear,
    /// Competence-based (Platanios et al. 2019, square-root competence):
    /// c(t) = min(1, √(t·(1 − c₀²) + c₀²)) with c₀ = 0.1; the easiest ⌈c·L⌉ levels.
    Competence,
    /// Loss-driven self-paced: a level joins once every easier level's last
    /// training loss is below a threshold that rises with progress (0.5 → 2.5
    /// nats); the easiest level is always in.
    SelfPaced,
}

impl Schedule {
    /// The schedule called `name` (`fixed`, `linear`, `competence`, `self_paced`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "fixed" => Schedule::Fixed,
            "linear" => Schedule::Linear,
            "competence" => Schedule::Competence,
            "self_paced" => Schedule::SelfPaced,
            _ => return None,
        })
    }

    /// How many of the `levels` training levels (easiest first) an epoch at
    /// `progress` ∈ [0, 1] draws from; `losses` are the last training losses per
    /// level (used by [`Schedule::SelfPaced`]).
    pub fn levels(&self, levels: u32, progress: f64, losses: &[f64]) -> u32 {
        let p = progress.clamp(0.0, 1.0);
        let l = f64::from(levels);
        let n = match self {
            Schedule::Fixed => levels,
            Schedule::Linear => (p * l).floor() as u32 + 1,
            Schedule::Competence => {
                let c0: f64 = 0.1;
                let c = (p * (1.0 - c0 * c0) + c0 * c0).sqrt().min(1.0);
                (c * l).ceil() as u32
            }
            Schedule::SelfPaced => {
                let threshold = 0.5 + 2.0 * p;
                1 + losses.iter().take_while(|loss| **loss < threshold).count() as u32
            }
        };
        n.clamp(1, levels.max(1))
    }
}
