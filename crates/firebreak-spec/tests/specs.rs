//! Bad specs, data-driven: each case edits the shipped example and expects one exact
//! message (file, line, column, key, message and hint).

use firebreak_spec::{CampaignSpec, EXAMPLE_SPEC};

/// Replaces `from` by `to` in the example spec, parses it and compares the error.
fn check(from: &str, to: &str, expected: &str) {
    assert!(EXAMPLE_SPEC.contains(from), "example lacks {from:?}");
    let source = EXAMPLE_SPEC.replacen(from, to, 1);
    let error = CampaignSpec::parse(&source, "c.toml").expect_err("spec should be rejected");
    assert_eq!(
        error.to_string(),
        expected,
        "after replacing {from:?} with {to:?}"
    );
}

#[test]
fn example_is_valid() {
    let spec = CampaignSpec::parse(EXAMPLE_SPEC, "c.toml").expect("valid");
    assert_eq!(spec.space.parameters().len(), 4);
    assert_eq!(spec.spec.governance.request_ttl.0, 7 * 86_400);
}

#[test]
fn bad_specs() {
    check(
        "seed = 7",
        "sed = 7",
        "c.toml:6:1: `campaign.sed`: unknown key `sed`\nhint: check the spelling; the keys allowed here are `name`, `seed`, `description`",
    );
    check(
        "n_trials = 20",
        "n_trials = 200",
        "c.toml:22:1: `search.n_trials`: n_trials = 200 exceeds [constraints] max_trials = 100\nhint: lower n_trials, or raise max_trials (a governed change)",
    );
    check(
        "n_trials = 20",
        "n_trials = \"many\"",
        "c.toml:22:12: `search.n_trials`: wrong type: found string \"many\"\nhint: write a whole number (no quotes)",
    );
    check(
        "n_trials = 20\n",
        "",
        "c.toml:19:1: `search.n_trials`: missing required key `n_trials`\nhint: add `n_trials = …` here (see `firebreak init` for a commented example)",
    );
    check(
        "low = 1e-4, high = 0.5",
        "low = 0.5, high = 1e-4",
        "c.toml:14:32: `space.lr.low`: low = 0.5 is greater than high = 0.0001\nhint: fix the bounds so that low <= high (and low > 0 with log = true)",
    );
    check(
        "low = 1e-4, high = 0.5, log = true",
        "low = 0.0, high = 0.5, log = true",
        "c.toml:14:55: `space.lr.log`: log = true needs low > 0, got low = 0\nhint: fix the bounds so that low <= high (and low > 0 with log = true)",
    );
    check(
        "hidden     = { type = \"int\", low = 8,",
        "hidden     = { type = \"int\", low = 8.5,",
        "c.toml:15:30: `space.hidden.low`: int parameter `hidden` has a non-integer `low` = 8.5\nhint: write an integer, or set type = \"float\"",
    );
    check(
        "type = \"categorical\", choices",
        "type = \"categorical\", choises",
        "c.toml:16:38: `space.activation.choises`: unknown key `choises`\nhint: check the spelling; the keys allowed here are `type`, `low`, `high`, `log`, `step`, `choices`, `when`",
    );
    check(
        "type = \"categorical\"",
        "type = \"categoric\"",
        "c.toml:16:23: `space.activation.type`: unknown variant `categoric`, expected one of `float`, `int`, `categorical`\nhint: use one of `float`, `int`, `categorical`",
    );
    check(
        "when = { activation = \"relu\" }",
        "when = { activaton = \"relu\" }",
        "c.toml:17:56: `space.momentum.when`: parameter `momentum`: `when` names `activaton`, which is not a parameter\nhint: `when` must name other parameters and values they can take, without cycles",
    );
    check(
        "when = { activation = \"relu\" }",
        "when = { activation = \"gelu\" }",
        "c.toml:17:56: `space.momentum.when`: parameter `momentum`: `when` value \"gelu\" can never be taken by `activation` (one of [\"relu\", \"tanh\"])\nhint: `when` must name other parameters and values they can take, without cycles",
    );
    check(
        "\"--hidden\", \"{hidden}\"",
        "\"--hidden\", \"{hiden}\"",
        "c.toml:30:1: `task.command`: placeholder `{hiden}` names no parameter\nhint: use a parameter of [space] or one of trial_number, seed, trial_dir, campaign",
    );
    check(
        "direction = \"maximize\"",
        "direction = \"up\"",
        "c.toml:11:13: `objective.direction`: unknown variant `up`, expected `maximize` or `minimize`\nhint: use one of `maximize` or `minimize`",
    );
    check(
        "direction = \"maximize\"\n",
        "",
        "c.toml:9:1: `objective`: `metric` has no `direction`\nhint: add direction = \"maximize\" or direction = \"minimize\"",
    );
    check(
        "name = \"digits-mlp\"",
        "name = \"digits mlp\"",
        "c.toml:5:1: `campaign.name`: campaign name \"digits mlp\" is not allowed\nhint: use 1 to 64 letters, digits, `-`, `_` or `.`, e.g. name = \"digits-mlp\"",
    );
    check(
        "parallelism = 2",
        "parallelism = 0",
        "c.toml:23:1: `search.parallelism`: parallelism = 0 runs nothing\nhint: set parallelism to the number of trials to run at once, e.g. the number of cores",
    );
    check(
        "trial_timeout = \"5m\"",
        "trial_timeout = \"5 weeks\"",
        "c.toml:24:17: `search.trial_timeout`: `5 weeks` has an unknown unit ` weeks`\nhint: write integer seconds or a number with s, m, h or d, e.g. \"10m\"",
    );
    check(
        "max_wall_time = \"2h\"",
        "max_wall_time = \"2h\"\nmax_energy_kwh = -1.0",
        "c.toml:37:1: `constraints.max_energy_kwh`: max_energy_kwh = -1 must be a positive number\nhint: set max_energy_kwh above zero, or remove it for no limit",
    );
    check(
        "kind = \"command\"",
        "kind = \"table\"",
        "c.toml:30:1: `task.command`: `command` does not apply to a task of kind \"table\"\nhint: remove `command`, or change `kind`",
    );
    check(
        "[constraints]",
        "foo = 1\n[constraints]",
        "c.toml:34:1: `task.foo`: unknown key `foo`\nhint: check the spelling; the keys allowed here are `kind`, `command`, `workdir`, `env`, `path`, `dataset`, `model`, `max_epochs`, `refit`",
    );
    check(
        "[constraints]",
        "refit = true\n[constraints]",
        "c.toml:34:1: `task.refit`: `refit` does not apply to a task of kind \"command\"\nhint: remove `refit`, or change `kind`",
    );
    check(
        "[campaign]",
        "[campaign",
        "c.toml:4:10: unclosed table, expected `]`\nhint: fix the TOML syntax at this position",
    );
    check(
        "max_wall_time = \"2h\"",
        "max_wall_time = \"2h\"\n\n[governance]\nquorum = 2",
        "c.toml:39:1: `governance.quorum`: quorum = 2 with 0 approvers listed\nhint: set quorum between 1 and the number of approvers",
    );
    check(
        "max_wall_time = \"2h\"",
        "max_wall_time = \"2h\"\n\n[governance]\napprovers = [ { name = \"alice\", key = \"rsa:xyz\" } ]",
        "c.toml:39:1: `governance.approvers`: approver \"alice\" has key \"rsa:xyz\", not an Ed25519 public key\nhint: write `ed25519:` and the base64 of the 32-byte key, as printed by `firebreak keys new`",
    );
}
