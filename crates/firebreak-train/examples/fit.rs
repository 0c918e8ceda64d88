//! Trains one configuration on a bundled dataset and prints each epoch and the
//! test metrics: a quick way to try a genome outside a campaign.
//!
//! `fit DATASET MODEL [name=value …] [--epochs N] [--seed S] [--refit]` (`--refit`
//! trains on the training and validation splits together), e.g.
//! `cargo run --release -p firebreak-train --example fit -- mnist1d cnn channels=32 blocks=3 --epochs 30`
#![allow(clippy::print_stdout)]

use firebreak_core::{ParamValue, Params};
use firebreak_train::{Control, genome, test, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: fit DATASET MODEL [name=value …] [--epochs N] [--seed S] [--refit]";
    let dataset = args.next().ok_or(usage)?;
    let model = args.next().ok_or(usage)?;
    let (mut epochs, mut seed, mut params) = (20u32, 0u64, Params::new());
    let mut refit = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--epochs" => epochs = args.next().ok_or(usage)?.parse()?,
            "--seed" => seed = args.next().ok_or(usage)?.parse()?,
            "--refit" => refit = true,
            pair => {
                let (name, value) = pair.split_once('=').ok_or(usage)?;
                let value = if let Ok(i) = value.parse::<i64>() {
                    ParamValue::Int(i)
                } else if let Ok(x) = value.parse::<f64>() {
                    ParamValue::Float(x)
                } else {
                    ParamValue::Str(value.to_string())
                };
                params.insert(name.to_string(), value);
            }
        }
    }
    let mut data = firebreak_data::load(&dataset)?;
    if refit {
        data = data.with_validation_in_training();
    }
    let g = genome(&model, &params, epochs)?;
    println!("{}", g.describe());
    let dir = std::env::temp_dir().join(format!("firebreak-fit-{}", std::process::id()));
    let started = std::time::Instant::now();
    let trained = train(&g, &data, seed, Some(&dir), |m| {
        println!(
            "epoch {:>3}  train_loss {:.4}  val_loss {:.4}  val_accuracy {:.4}  ({:.1} s)",
            m.epoch,
            m.train_loss,
            m.val_loss,
            m.val_accuracy,
            started.elapsed().as_secs_f64()
        );
        Control::Continue
    })?;
    let (loss, accuracy) = test(&g, &data, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "params {}  flops/sample {}  test_loss {loss:.4}  test_accuracy {accuracy:.4}",
        trained.params, trained.flops_per_sample
    );
    Ok(())
}
