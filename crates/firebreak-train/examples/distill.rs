//! Knowledge distillation on bundled MNIST-1D: trains a teacher CNN once, then
//! small students from the labels alone and distilled from the teacher, a few
//! seeds each, and prints a Markdown table (validation accuracy of the last
//! epoch, trainable parameters, CPU seconds of the training thread).
//!
//! `distill [--seeds N] [--epochs N] [--students NAME,…]`, e.g.
//! `cargo run --release -p firebreak-train --example distill -- --seeds 3`
//!
//! Students: `cnn8` (3 blocks of 8 channels), `cnn12`, `mlp48` (one hidden
//! layer of 48), `mlp32x2` (two of 32). Modes: `labels` (plain training),
//! `distilled` (T = 4, alpha = 0.7, 1,000 synthetic examples per epoch) and
//! `soft-only` (the same without synthetic examples), every one with the
//! teacher's optimiser, rate, schedule and batch size.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use firebreak_core::{ParamValue, Params};
use firebreak_train::{Control, Distill, Genome, Trained, genome, train, train_distilled};

fn params(pairs: &[(&str, ParamValue)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The training hyperparameters every network here shares (`examples/mnist1d.toml`'s names).
fn training(mut extra: Vec<(&'static str, ParamValue)>) -> Params {
    extra.extend([
        ("optimizer", ParamValue::Str("adam".into())),
        ("lr", ParamValue::Float(3e-3)),
        ("schedule", ParamValue::Str("cosine".into())),
        ("batch_size", ParamValue::Int(64)),
    ]);
    params(&extra)
}

fn cnn(channels: i64) -> Params {
    training(vec![
        ("blocks", ParamValue::Int(3)),
        ("channels", ParamValue::Int(channels)),
        ("kernel", ParamValue::Int(5)),
        ("pool", ParamValue::Str("max".into())),
        ("norm", ParamValue::Str("batch".into())),
    ])
}

/// CPU seconds the calling thread has run (Linux: `/proc/thread-self/schedstat`);
/// the trainer runs on the calling thread.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// Runs `f`, returning its result, CPU seconds and wall seconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let out = f();
    (out, cpu_seconds() - cpu, wall.elapsed().as_secs_f64())
}

fn accuracy(trained: &Trained) -> f64 {
    trained.last.map_or(f64::NAN, |m| m.val_accuracy)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: distill [--seeds N] [--epochs N] [--students cnn8,cnn12,mlp48,mlp32x2]";
    let (mut seeds, mut epochs) = (3u64, 27u32);
    let mut students = vec!["cnn8", "cnn12", "mlp48", "mlp32x2"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seeds" => seeds = args.next().ok_or(usage)?.parse()?,
            "--epochs" => epochs = args.next().ok_or(usage)?.parse()?,
            "--students" => {
                students = args
                    .next()
                    .ok_or(usage)?
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            _ => return Err(usage.into()),
        }
    }
    let data = firebreak_data::load("mnist1d")?;
    let dir = std::env::temp_dir().join(format!("firebreak-distill-{}", std::process::id()));
    let teacher = genome("cnn", &cnn(32), epochs)?;
    let (taught, cpu, wall) =
        timed(|| train(&teacher, &data, 0, Some(&dir), |_| Control::Continue));
    let taught = taught?;
    println!(
        "teacher: {}\nteacher: val_accuracy {:.4}, {} params, {cpu:.1} CPU s, {wall:.1} s wall\n",
        teacher.describe(),
        accuracy(&taught),
        taught.params
    );
    let distill = |synthetic_per_epoch| Distill {
        teacher: teacher.clone(),
        checkpoint: dir.clone(),
        temperature: 4.0,
        alpha: 0.7,
        synthetic_per_epoch,
    };
    let modes = [
        ("labels", None),
        ("distilled", Some(distill(1000))),
        ("soft-only", Some(distill(0))),
    ];
    println!("| student | params | mode | val accuracy per seed | mean | CPU s per training |");
    println!("|---|---|---|---|---|---|");
    for name in &students {
        let g: Genome = match name.as_str() {
            "cnn8" => genome("cnn", &cnn(8), epochs)?,
            "cnn12" => genome("cnn", &cnn(12), epochs)?,
            "mlp48" => genome(
                "mlp",
                &training(vec![
                    ("depth", ParamValue::Int(1)),
                    ("width", ParamValue::Int(48)),
                ]),
                epochs,
            )?,
            "mlp32x2" => genome(
                "mlp",
                &training(vec![
                    ("depth", ParamValue::Int(2)),
                    ("width", ParamValue::Int(32)),
                ]),
                epochs,
            )?,
            other => return Err(format!("unknown student `{other}`; {usage}").into()),
        };
        for (mode, distill) in &modes {
            let (mut accuracies, mut cpu, mut student_params) = (Vec::new(), 0.0, 0);
            for seed in 1..=seeds {
                let (trained, seconds, _) = timed(|| {
                    train_distilled(&g, &data, seed, None, distill.as_ref(), |_| {
                        Control::Continue
                    })
                });
                let trained = trained?;
                accuracies.push(accuracy(&trained));
                cpu += seconds;
                student_params = trained.params;
            }
            let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
            let each: Vec<String> = accuracies.iter().map(|a| format!("{a:.3}")).collect();
            println!(
                "| {name} | {student_params} | {mode} | {} | {mean:.3} | {:.1} |",
                each.join(", "),
                cpu / seeds as f64
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
