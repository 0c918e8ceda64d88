//! `firebreak launch k8s`: N workers of a campaign as one Kubernetes Indexed Job
//! (`completionMode: Indexed`, one pod per index, each a `firebreak worker`).
//!
//! Why an Indexed Job: one object for people and for `kubectl delete`, a stable
//! index per pod for its worker id, and the Job controller restarts failed pods
//! up to `backoffLimit`; the workers claim trials from the shared store, so a
//! pod needs nothing but the storage URL, which comes from a Secret
//! (`firebreak-storage`, key `url`) and never appears in the manifest.
//!
//! Why `kubectl apply` and not a Kubernetes client library: the manifest is a
//! few dozen lines of JSON, and kube-rs with its TLS and HTTP stack would be the
//! heaviest dependency of the binary for one request. No cluster runs where
//! this is tested: the manifest is checked against a golden file and parsed
//! back with the Kubernetes API's types (`k8s-openapi`), and applying it is
//! documented in `docs/kubernetes.md` as not run.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// The Secret the pods read the storage URL from.
pub(crate) const STORAGE_SECRET: &str = "firebreak-storage";

/// What to launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct K8sJob {
    /// The campaign the workers join.
    pub campaign: String,
    /// Pods, one worker each.
    pub workers: u32,
    /// The worker image (`deploy/Dockerfile` builds one).
    pub image: String,
    /// The namespace; `None`: the context's.
    pub namespace: Option<String>,
    /// Each worker's lease, in seconds.
    pub lease_secs: u64,
}

/// A DNS-1123 label made from a campaign name: lowercase letters, digits and
/// `-`, at most 63 characters, starting and ending with a letter or digit.
fn label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '-' }
        })
        .collect();
    out.truncate(53);
    let trimmed = out.trim_matches('-');
    format!(
        "firebreak-{}",
        if trimmed.is_empty() {
            "campaign"
        } else {
            trimmed
        }
    )
}

/// The Indexed Job's manifest.
pub(crate) fn manifest(job: &K8sJob) -> Result<Value, anyhow::Error> {
    if job.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if job.image.trim().is_empty() {
        bail!(
            "--image names the worker image\nhint: `docker build -f deploy/Dockerfile` builds one"
        );
    }
    let name = label(&job.campaign);
    let labels = json!({
        "app.kubernetes.io/name": "firebreak",
        "app.kubernetes.io/component": "worker",
        "firebreak.dev/campaign": name,
    });
    let mut metadata = json!({ "name": name, "labels": labels });
    if let Some(namespace) = &job.namespace {
        metadata["namespace"] = json!(namespace);
    }
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": job.workers,
            "parallelism": job.workers,
            // A pod that fails is replaced; its trials come back by lease.
            "backoffLimit": job.workers.saturating_mul(2),
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "worker",
                        "image": job.image,
                        "args": [
                            "worker",
                            "--campaign", job.campaign,
                            "--lease", format!("{}s", job.lease_secs),
                            "--slots", "1",
                        ],
                        "env": [
                            {
                                "name": "FIREBREAK_STORAGE",
                                "valueFrom": { "secretKeyRef": { "name": STORAGE_SECRET, "key": "url" } },
                            },
                            {
                                "name": "FIREBREAK_WORKER_ID",
                                "valueFrom": { "fieldRef": {
                                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                                } },
                            },
                        ],
                        "resources": {
                            "requests": { "cpu": "1", "memory": "1Gi" },
                            "limits": { "memory": "2Gi" },
                        },
                    }],
                },
            },
        },
    }))
}

/// Applies the manifest with `kubectl apply -f -` (the context kubectl uses);
/// returns what kubectl printed.
pub(crate) fn apply(manifest: &Value) -> Result<String, anyhow::Error> {
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow!(
                "cannot run kubectl: {e}\nhint: install kubectl and select the cluster's context, \
                 or print the manifest with --dry-run and apply it elsewhere"
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(manifest.to_string().as_bytes())
            .context("cannot send the manifest to kubectl")?;
    }
    let output = child.wait_with_output().context("kubectl did not finish")?;
    if !output.status.success() {
        bail!(
            "kubectl apply failed: {}\nhint: the pods read the storage URL from the Secret \
             {STORAGE_SECRET:?} (key \"url\"): `kubectl create secret generic {STORAGE_SECRET} \
             --from-literal=url=postgres://…`",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> K8sJob {
        K8sJob {
            campaign: "Digits_CNN v2".into(),
            workers: 4,
            image: "registry.lab/firebreak:0.1.0".into(),
            namespace: Some("research".into()),
            lease_secs: 60,
        }
    }

    #[test]
    fn the_manifest_equals_the_golden_file() {
        let golden: Value = serde_json::from_str(include_str!("../tests/golden/k8s-job.json"))
            .expect("golden JSON");
        assert_eq!(manifest(&job()).expect("manifest"), golden);
    }

    /// Parsed with the Kubernetes API's own types (`k8s-openapi`, API 1.33):
    /// the parse keeps only the fields the API knows, at the places it knows
    /// them, with their types, so a misspelled, misplaced or mistyped field
    /// makes the round trip differ from the manifest.
    #[test]
    fn the_manifest_is_a_kubernetes_job() {
        use k8s_openapi::api::batch::v1::Job;
        let manifest = manifest(&job()).expect("manifest");
        let parsed: Job = serde_json::from_value(manifest.clone()).expect("a batch/v1 Job");
        assert_eq!(serde_json::to_value(&parsed).expect("serialised"), manifest);
        let spec = parsed.spec.expect("spec");
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(4), Some(4)));
        let containers = spec.template.spec.expect("pod spec").containers;
        let env = containers[0].env.as_ref().expect("env");
        let storage = env[0]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref());
        assert_eq!(storage.map(|s| s.name.as_str()), Some("firebreak-storage"));
        assert!(
            env.iter().all(|e| e.value.is_none()),
            "a literal value: {env:?}"
        );
    }

    #[test]
    fn names_are_dns_labels_and_bad_input_is_refused() {
        assert_eq!(label("Digits_CNN v2"), "firebreak-digits-cnn-v2");
        let long = label(&"x".repeat(200));
        assert!(long.len() <= 63, "{long}");
        assert_eq!(label("__"), "firebreak-campaign");
        let zero = K8sJob {
            workers: 0,
            ..job()
        };
        assert!(manifest(&zero).is_err());
        let no_image = K8sJob {
            image: " ".into(),
            ..job()
        };
        assert!(manifest(&no_image).is_err());
    }
}
