//! The bundled datasets: sizes, documented stratified splits, scaling, the refit
//! split (training then validation examples), and the curriculum skills' levels
//! (the requested difficulty, no test-level example in training, determinism).

use std::collections::HashSet;

use firebreak_data::curriculum::{Schedule, Skill};
use firebreak_data::{DATASETS, IGNORE, load};

#[test]
fn real_datasets_have_their_sizes_and_stratified_splits() {
    for (name, total, classes, features) in [
        ("digits", 1797, 10, 64),
        ("iris", 150, 3, 4),
        ("wine", 178, 3, 13),
        ("breast_cancer", 569, 2, 30),
        ("mnist", 10_000, 10, 784),
    ] {
        let d = load(name).expect(name);
        assert_eq!(d.train.n + d.val.n + d.test.n, total, "{name}");
        assert_eq!(d.classes, classes, "{name}");
        assert_eq!(d.shape.size(), features, "{name}");
        let share = |n: usize| n as f64 / total as f64;
        assert!((share(d.train.n) - 0.6).abs() < 0.02, "{name}");
        assert!((share(d.val.n) - 0.2).abs() < 0.02, "{name}");
        // Every class is in every split, in proportion.
        for class in 0..classes as u32 {
            let count = |y: &[u32]| y.iter().filter(|l| **l == class).count() as f64;
            let all = count(&d.train.y) + count(&d.val.y) + count(&d.test.y);
            assert!(
                (count(&d.train.y) / all - 0.6).abs() < 0.05,
                "{name} class {class}"
            );
        }
        assert_eq!(d, load(name).expect(name), "{name}: deterministic");
    }
    let digits = load("digits").expect("digits");
    assert!(digits.train.x.iter().all(|v| (0.0..=1.0).contains(v)));
    let wine = load("wine").expect("wine");
    let mean: f32 =
        (0..wine.train.n).map(|r| wine.train.x[r * 13]).sum::<f32>() / wine.train.n as f32;
    assert!(
        mean.abs() < 1e-4,
        "standardised on the training split: {mean}"
    );
}

#[test]
fn refitting_trains_on_the_training_then_the_validation_examples() {
    let digits = load("digits").expect("digits");
    let refit = digits.with_validation_in_training();
    assert_eq!(refit.train.n, digits.train.n + digits.val.n);
    let width = digits.shape.size();
    let (first, rest) = refit.train.x.split_at(digits.train.n * width);
    assert_eq!(first, digits.train.x);
    assert_eq!(rest, digits.val.x);
    assert_eq!(
        refit.train.y,
        [&digits.train.y[..], &digits.val.y[..]].concat()
    );
    assert_eq!(
        (&refit.val, &refit.test),
        (&digits.val, &digits.test),
        "validation and test splits unchanged"
    );
}

#[test]
fn an_unknown_name_lists_the_datasets() {
    let error = load("cifar").expect_err("unknown").to_string();
    assert!(
        error.contains("digits") && error.contains("mnist1d"),
        "{error}"
    );
    assert!(DATASETS.iter().all(|n| load(n).is_ok()));
}

#[test]
fn curriculum_levels_have_the_requested_difficulty_and_never_leak() {
    for name in ["mod_add", "parity", "copy", "reverse", "sort", "addition"] {
        let skill = Skill::from_name(name).expect(name);
        let d = load(name).expect(name);
        let width = skill.length();
        let rows = |s: &firebreak_data::Split| -> HashSet<Vec<u32>> {
            s.x.chunks(width)
                .map(|r| r.iter().map(|v| *v as u32).collect())
                .collect()
        };
        let (train, val, test) = (rows(&d.train), rows(&d.val), rows(&d.test));
        assert!(
            train.is_disjoint(&test),
            "{name}: a test example is in training"
        );
        assert!(
            train.is_disjoint(&val),
            "{name}: a validation example is in training"
        );
        assert!(d.train.levels.iter().all(|l| *l <= skill.train_levels()));
        assert!(d.test.levels.iter().all(|l| *l > skill.train_levels()));
        // Each level has its difficulty: the number of scored answer tokens
        // (sequences) or question tokens grows with the level.
        let question_len = |s: &firebreak_data::Split, i: usize| {
            s.x[i * width..(i + 1) * width]
                .iter()
                .position(|t| *t == 1.0)
                .expect("a separator")
        };
        for (i, level) in d.test.levels.iter().enumerate() {
            let q = question_len(&d.test, i);
            let expected = match name {
                "mod_add" => 3,
                "parity" => 2 * *level as usize,
                "addition" => 2 * *level as usize + 1,
                _ => *level as usize,
            };
            assert_eq!(q, expected, "{name} level {level}");
            let scored = d.test.y[i * width..(i + 1) * width]
                .iter()
                .filter(|y| **y != IGNORE)
                .count();
            assert!(scored >= 1);
        }
        assert_eq!(d, load(name).expect(name), "{name}: deterministic");
    }
}

#[test]
fn schedules_open_levels_as_documented() {
    assert_eq!(Schedule::Fixed.levels(4, 0.0, &[]), 4);
    assert_eq!(Schedule::Linear.levels(4, 0.0, &[]), 1);
    assert_eq!(Schedule::Linear.levels(4, 0.5, &[]), 3);
    assert_eq!(Schedule::Competence.levels(4, 0.0, &[]), 1);
    assert_eq!(Schedule::Competence.levels(4, 1.0, &[]), 4);
    assert_eq!(Schedule::SelfPaced.levels(4, 0.0, &[0.3, 0.9, 0.1]), 2);
    assert_eq!(Schedule::SelfPaced.levels(4, 1.0, &[0.3, 0.9, 0.1]), 4);
}
