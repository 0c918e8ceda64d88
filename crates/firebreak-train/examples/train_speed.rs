//! Training throughput of the built-in trainer on fixed shapes, for
//! `bench/trainer.sh` (which runs PyTorch on the same shapes beside it).
//! Prints one JSON line per shape: `{"shape", "steps_per_s"}`, the median of
//! `REPEATS` timings of `STEPS` optimiser steps (Adam, cross-entropy) on one
//! thread.
//!
//! Usage: `train_speed [REPEATS] [SHAPE]`: only the shapes whose label contains
//! `SHAPE` (e.g. `cnn`) when given.
#![allow(clippy::print_stdout)]

use firebreak_core::{ParamValue, Params};
use firebreak_data::{Dataset, Shape, Split};
use firebreak_train::{Control, genome, train};

/// A synthetic dataset of `n` examples of `shape` (values and labels from a
/// fixed pseudo-random sequence): throughput does not depend on the values.
fn synthetic(shape: Shape, n: usize) -> Dataset {
    let size = shape.size();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let x = (0..n * size)
        .map(|_| (next() % 1000) as f32 / 1000.0)
        .collect();
    let y = (0..n).map(|_| (next() % 10) as u32).collect();
    let split = Split {
        x,
        y,
        n,
        levels: Vec::new(),
    };
    let tiny = Split {
        x: vec![0.0; size],
        y: vec![0],
        n: 1,
        levels: Vec::new(),
    };
    Dataset {
        name: "synthetic".into(),
        shape,
        classes: 10,
        targets: 1,
        train: split,
        val: tiny.clone(),
        test: tiny,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repeats: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let only = args.get(2).map_or("", String::as_str);
    let int = ParamValue::Int;
    let shapes: Vec<(&str, &str, Shape, Params, usize)> = vec![
        (
            "mlp 64-64-10 batch 32",
            "mlp",
            Shape::Tabular { features: 64 },
            [
                ("depth".into(), int(1)),
                ("width".into(), int(64)),
                ("batch_size".into(), int(32)),
            ]
            .into(),
            32 * 2000,
        ),
        (
            "mlp 784-128-10 batch 64",
            "mlp",
            Shape::Tabular { features: 784 },
            [
                ("depth".into(), int(1)),
                ("width".into(), int(128)),
                ("batch_size".into(), int(64)),
            ]
            .into(),
            64 * 400,
        ),
        (
            "cnn 28x28 conv8-conv16 batch 64",
            "cnn",
            Shape::Image {
                channels: 1,
                height: 28,
                width: 28,
            },
            [
                ("blocks".into(), int(2)),
                ("channels_1".into(), int(8)),
                ("channels_2".into(), int(16)),
                ("kernel".into(), int(3)),
                ("batch_size".into(), int(64)),
            ]
            .into(),
            64 * 60,
        ),
    ];
    for (label, model, shape, params, n) in shapes {
        if !label.contains(only) {
            continue;
        }
        let data = synthetic(shape, n);
        let g = genome(model, &params, 1).unwrap_or_else(|e| panic!("{e}"));
        let steps = n / g.batch_size;
        let mut rates: Vec<f64> = (0..repeats)
            .map(|_| {
                let started = std::time::Instant::now();
                train(&g, &data, 1, None, |_| Control::Continue).unwrap_or_else(|e| panic!("{e}"));
                steps as f64 / started.elapsed().as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "{}",
            serde_json::json!({"shape": label, "steps_per_s": rates[rates.len() / 2], "steps": steps})
        );
    }
}
