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
        "c.toml:5:1: `campaign.name`: campaign name \"digits mlp\" is not allowed: it holds the character ' '\nhint: use 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.`, e.g. name = \"digits-mlp\"",
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
        "c.toml:34:1: `task.foo`: unknown key `foo`\nhint: check the spelling; the keys allowed here are `kind`, `command`, `workdir`, `env`, `path`, `dataset`, `model`, `max_epochs`, `refit`, `split_seed`, `workspace`, `editable`, `sandbox`",
    );
    check(
        "[constraints]",
        "editable = [\"train.py\"]\n[constraints]",
        "c.toml:34:1: `task.editable`: `editable` does not apply to a task of kind \"command\"\nhint: remove `editable`, or change `kind`",
    );
    check(
        "kind = \"command\"",
        "kind = \"code\"",
        "c.toml:27:1: `task`: a code task needs `workspace`, the parent program's folder\nhint: add workspace = \"agent/\"",
    );
    check(
        "kind = \"command\"",
        "kind = \"code\"\nworkspace = \"w\"\neditable = [\"../evaluate.py\"]\ndataset = \"digits\"",
        "c.toml:30:1: `task.editable`: \"../evaluate.py\" is not a plain relative path inside the workspace\nhint: name files like \"train.py\" or \"src/model.py\"",
    );
    check(
        "kind = \"command\"",
        "kind = \"code\"\nworkspace = \"w\"\neditable = [\"train.py\"]\ndataset = \"digits\"",
        "c.toml:20:1: `search.sampler`: a code task is proposed by a language-model agent\nhint: set sampler = \"agent\" with [search.sampler_options] mode = \"code\"",
    );
    check(
        "[constraints]",
        "refit = true\n[constraints]",
        "c.toml:34:1: `task.refit`: `refit` does not apply to a task of kind \"command\"\nhint: remove `refit`, or change `kind`",
    );
    check(
        "[constraints]",
        "split_seed = 101\n[constraints]",
        "c.toml:34:1: `task.split_seed`: `split_seed` does not apply to a task of kind \"command\"\nhint: remove `split_seed`, or change `kind`",
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

/// Replaces `from` by `to` in the example spec and expects an error at `key` whose
/// message holds every one of `words`.
fn check_key(from: &str, to: &str, key: &str, words: &[&str]) {
    assert!(EXAMPLE_SPEC.contains(from), "example lacks {from:?}");
    let source = EXAMPLE_SPEC.replacen(from, to, 1);
    let error = CampaignSpec::parse(&source, "c.toml").expect_err("spec should be rejected");
    assert_eq!(
        error.key, key,
        "after replacing {from:?} with {to:?}: {error}"
    );
    assert!(error.to_string().contains("\nhint: "), "{error}");
    for word in words {
        assert!(
            error.to_string().contains(word),
            "after replacing {from:?} with {to:?}: {error} lacks {word:?}"
        );
    }
}

/// A name is a folder under the database's trial folder: `..` would be the
/// database's own folder, which a new campaign's stale-folder cleanup removed.
#[test]
fn campaign_names_are_one_plain_path_component() {
    let bad = |name: &str, why: &str| {
        check_key(
            "name = \"digits-mlp\"",
            &format!("name = {name}"),
            "campaign.name",
            &["c.toml:5:1", "is not allowed", why, "not starting with `.`"],
        )
    };
    bad(r#"".""#, "starts with `.`");
    bad(r#""..""#, "starts with `.`");
    bad(r#""...""#, "starts with `.`");
    bad(r#"".hidden""#, "starts with `.`");
    bad(r#""../db""#, "holds the character '/'");
    bad(r#""a/b""#, "holds the character '/'");
    bad(r#""a\\b""#, "holds the character '\\\\'");
    bad(r#""a:b""#, "holds the character ':'");
    bad(r#""a\u0000b""#, "holds the character '\\0'");
    bad(r#""a\nb""#, "holds the character '\\n'");
    bad(r#""a\u007fb""#, "holds the character '\\u{7f}'");
    bad(r#""é""#, "holds the character 'é'");
    bad(r#""""#, "is empty");
    bad(
        &format!("\"{}\"", "a".repeat(65)),
        "is 65 bytes long, over 64",
    );
    for good in ["a", "a.b", "a..b", "digits-mlp_2.v1", &"a".repeat(64)] {
        let source =
            EXAMPLE_SPEC.replacen("name = \"digits-mlp\"", &format!("name = \"{good}\""), 1);
        let spec = CampaignSpec::parse(&source, "c.toml").unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(spec.name(), good);
    }
}

const KEY_A: &str = "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY_B: &str = "ed25519:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";

fn approvers(list: &[(&str, &str)]) -> String {
    let entries: Vec<String> = list
        .iter()
        .map(|(name, key)| format!("{{ name = \"{name}\", key = \"{key}\" }}"))
        .collect();
    format!(
        "max_wall_time = \"2h\"\n\n[governance]\nquorum = 2\napprovers = [ {} ]",
        entries.join(", ")
    )
}

/// One key listed under two names would count twice toward a quorum.
#[test]
fn one_approver_key_under_two_names_is_refused() {
    let ok = EXAMPLE_SPEC.replacen(
        "max_wall_time = \"2h\"",
        &approvers(&[("alice", KEY_A), ("bob", KEY_B)]),
        1,
    );
    CampaignSpec::parse(&ok, "c.toml").expect("two people, two keys");
    check_key(
        "max_wall_time = \"2h\"",
        &approvers(&[("alice", KEY_A), ("bob", KEY_B), ("alice2", KEY_A)]),
        "governance.approvers",
        &[
            "c.toml:40:1",
            "approvers \"alice\" (entry 1) and \"alice2\" (entry 3) have the same key",
            KEY_A,
            "hint: one key is one person",
        ],
    );
    check_key(
        "max_wall_time = \"2h\"",
        &approvers(&[("alice", KEY_A), ("alice", KEY_B)]),
        "governance.approvers",
        &["approver \"alice\" is listed twice, as entries 1 and 2"],
    );
    // The same 32 bytes spelled with non-zero padding bits: refused as not canonical,
    // so two spellings of one key cannot pass as two keys.
    let same_bytes = "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=";
    check_key(
        "max_wall_time = \"2h\"",
        &approvers(&[("alice", KEY_A), ("mallory", same_bytes)]),
        "governance.approvers",
        &["approver \"mallory\" has key", "not an Ed25519 public key"],
    );
}

/// Sizes that validated and then panicked or exhausted memory are bounded here.
#[test]
fn sizes_are_bounded_at_validation() {
    let whole_i64 =
        "hidden     = { type = \"int\", low = -9223372036854775808, high = 9223372036854775807 }";
    check_key(
        "hidden     = { type = \"int\", low = 8, high = 64, log = true }",
        whole_i64,
        "space.hidden.low",
        &[
            "low = -9223372036854775808 is outside ±2^53",
            "hint: keep int bounds within ±9007199254740992",
        ],
    );
    check_key(
        "hidden     = { type = \"int\", low = 8, high = 64, log = true }",
        "hidden     = { type = \"int\", low = 0, high = 9223372036854775807 }",
        "space.hidden.high",
        &["high = 9223372036854775807 is outside ±2^53"],
    );
    check_key(
        "lr         = { type = \"float\", low = 1e-4, high = 0.5, log = true }",
        "lr         = { type = \"float\", low = 0.0, high = 1e300, step = 1e-300 }",
        "space.lr.step",
        &[
            "step = 1e-300 cuts",
            "hint: use a step that cuts the range into at most",
        ],
    );
    check_key(
        "lr         = { type = \"float\", low = 1e-4, high = 0.5, log = true }",
        "lr         = { type = \"float\", low = -1e308, high = 1e308 }",
        "space.lr.high",
        &["wider than the largest float"],
    );
    check_key(
        "choices = [\"relu\", \"tanh\"]",
        "choices = [1.0, nan]",
        "space.activation.choices",
        &[
            "choice nan is not a number",
            "hint: list each choice once, and no `nan`",
        ],
    );
    check_key(
        "parallelism = 2",
        "parallelism = 4294967295",
        "search.parallelism",
        &[
            "c.toml:23:1",
            "parallelism = 4294967295 is over the limit of 1024",
            "hint: set parallelism to at most 1024",
        ],
    );
    check_key(
        "n_trials = 20",
        "n_trials = 9223372036854775807",
        "search.n_trials",
        &["n_trials = 9223372036854775807 is over the limit of 1000000000"],
    );
    check_key(
        "trial_timeout = \"5m\"",
        "trial_timeout = 9223372036854775807",
        "search.trial_timeout",
        &[
            "is longer than 365d",
            "hint: set trial_timeout to at most \"365d\"",
        ],
    );
    check_key(
        "max_wall_time = \"2h\"",
        "max_wall_time = \"2h\"\n\n[governance]\nrequest_ttl = \"100000d\"",
        "governance.request_ttl",
        &["request_ttl = 100000d is longer than 3650d"],
    );
    // The largest values allowed still validate.
    let source = EXAMPLE_SPEC
        .replacen("parallelism = 2", "parallelism = 1024", 1)
        .replacen(
            "hidden     = { type = \"int\", low = 8, high = 64, log = true }",
            "hidden     = { type = \"int\", low = -9007199254740992, high = 9007199254740992 }",
            1,
        );
    let spec = CampaignSpec::parse(&source, "c.toml").expect("largest bounds are valid");
    assert_eq!(spec.spec.search.parallelism, 1024);
}

/// A builtin task's `max_epochs` is bounded like the genome's `epochs`.
#[test]
fn builtin_max_epochs_is_bounded() {
    let builtin = EXAMPLE_SPEC.replacen(
        "kind = \"command\"\n# {name} expands to a parameter's value; an argument holding an inactive one is dropped.\ncommand = [\"python3\", \"train.py\", \"--lr\", \"{lr}\", \"--hidden\", \"{hidden}\"]\nworkdir = \".\"                  # relative to this file's folder\nenv = { OMP_NUM_THREADS = \"1\" }",
        "kind = \"builtin\"\ndataset = \"digits\"\nmax_epochs = 4294967295",
        1,
    );
    assert_ne!(builtin, EXAMPLE_SPEC, "the example's task changed");
    let error = CampaignSpec::parse(&builtin, "c.toml").expect_err("too many epochs");
    assert_eq!(error.key, "task.max_epochs", "{error}");
    assert!(error.message.contains("4294967295"), "{error}");
}

/// Validation is n log n in parameters, choices and conditions: this spec (50,000
/// parameters, half of them conditional, 50,000 choices, a chain of 2,000
/// conditions) took 24 s in a release build before (pairwise duplicate checks, a
/// quadratic topological sort, a scan per condition) and takes about 1 s in a debug
/// build now; the bound is generous for a busy machine, and the time is printed.
#[test]
#[allow(clippy::print_stderr)] // the time is printed for `--nocapture` runs
fn large_spaces_validate_quickly() {
    let mut text = String::from(
        "[campaign]\nname = \"big\"\n\n[objective]\nmetric = \"y\"\ndirection = \"minimize\"\n\n[space]\n",
    );
    let choices: Vec<String> = (0..50_000).map(|i| format!("\"c{i}\"")).collect();
    text.push_str(&format!(
        "cat = {{ type = \"categorical\", choices = [{}] }}\n",
        choices.join(", ")
    ));
    for i in 0..50_000 {
        let when = if i % 2 == 0 {
            format!(", when = {{ cat = [\"c{}\", \"c7\"] }}", i % 50_000)
        } else {
            String::new()
        };
        text.push_str(&format!(
            "p{i:05} = {{ type = \"float\", low = 0.0, high = 1.0{when} }}\n"
        ));
    }
    // A chain: z0001 needs z0000, z0002 needs z0001, ...
    text.push_str("z0000 = { type = \"int\", low = 0, high = 1 }\n");
    for i in 1..2_000 {
        text.push_str(&format!(
            "z{i:04} = {{ type = \"int\", low = 0, high = 1, when = {{ z{:04} = 1 }} }}\n",
            i - 1
        ));
    }
    text.push_str("\n[search]\nsampler = \"random\"\nn_trials = 10\n\n[task]\nkind = \"command\"\ncommand = [\"true\"]\n");
    let start = std::time::Instant::now();
    let spec = CampaignSpec::parse(&text, "big.toml").expect("valid");
    let elapsed = start.elapsed();
    eprintln!("validated 52,001 parameters and 50,000 choices in {elapsed:.2?}");
    assert_eq!(spec.space.parameters().len(), 52_001);
    let names: Vec<&str> = spec
        .space
        .parameters()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(&names[..2], ["cat", "p00000"]);
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "parents sort first here"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "took {elapsed:.2?}"
    );
}

/// `[generations]` is checked like every section: each mistake located at its key.
#[test]
fn generations_are_checked() {
    let parse = |section: &str| {
        let source = format!("{EXAMPLE_SPEC}\n[generations]\n{section}\n");
        CampaignSpec::parse(&source, "c.toml")
    };
    let spec = parse("count = 4\nbudget = 5").expect("valid");
    let g = spec.spec.generations.expect("generations");
    assert_eq!((g.count, g.budget, g.gates.reeval_seeds), (4, 5, 3));
    for (section, key, words) in [
        (
            "count = 3\nbudget = 5",
            "search.n_trials",
            &["count = 3 × budget = 5", "n_trials = 15"][..],
        ),
        ("count = 0\nbudget = 5", "generations.count", &["count = 0"]),
        (
            "count = 4\nbudget = 5\nnarrow_factor = 1.5",
            "generations.narrow_factor",
            &["(0, 1]"],
        ),
        (
            "count = 4\nbudget = 5\nseed_next = [\"parent\", \"parent\"]",
            "generations.seed_next",
            &["twice"],
        ),
        (
            "count = 4\nbudget = 5\nseed_next = [\"teacher\"]",
            "generations.seed_next",
            &["built-in task"],
        ),
        (
            "count = 4\nbudget = 5\n[generations.distill]\nalpha = 2.0",
            "generations.distill.alpha",
            &["alpha = 2"],
        ),
        (
            "count = 4\nbudget = 5\n[generations.next_space]\nlr = { type = \"float\", low = 0.5, high = 0.1 }",
            "generations.next_space.lr.low",
            &["greater than high"],
        ),
    ] {
        let error = parse(section).expect_err(section);
        assert_eq!(error.key, key, "{section}: {error}");
        assert!(error.to_string().contains("\nhint: "), "{error}");
        for word in words {
            assert!(error.to_string().contains(word), "{error} lacks {word:?}");
        }
    }
}
