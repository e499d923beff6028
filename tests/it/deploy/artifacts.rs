//! The systemd unit, the Dockerfile, the compose file and `docs/deployment.md` use only commands and
//! flags the binary has, and only environment variables that name settings of
//! `config.toml.example`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Files whose `lightspeed-sync` invocations and `LSSYNC__*` variables are checked.
const FILES: [&str; 4] = [
    "deploy/systemd/lightspeed-sync.service",
    "deploy/Dockerfile",
    "deploy/compose.yaml",
    "docs/deployment.md",
];

/// An invocation: the subcommand and the long flags given to it.
type Invocations = BTreeMap<String, BTreeSet<String>>;

#[test]
fn deploy_files_use_only_existing_commands_and_flags() {
    let mut invocations = Invocations::new();
    for file in FILES {
        let text = super::read_repo_file(file);
        for line in code_lines(file, &text) {
            collect_shell_invocations(&line, &mut invocations);
        }
    }
    // Exec-form commands of the images: ENTRYPOINT ["lightspeed-sync"] plus CMD / `command:`.
    let dockerfile = super::read_repo_file("deploy/Dockerfile");
    assert!(
        dockerfile.contains(r#"ENTRYPOINT ["lightspeed-sync"]"#),
        "Dockerfile ENTRYPOINT"
    );
    let compose = super::read_repo_file("deploy/compose.yaml");
    for text in [&dockerfile, &compose] {
        for line in text.lines() {
            let line = line.trim();
            if let Some(args) = line
                .strip_prefix("CMD ")
                .or_else(|| line.strip_prefix("command: "))
            {
                add_invocation(&exec_form(args), &mut invocations);
            }
        }
    }
    for expected in ["run", "sim", "demo", "authorize", "keygen"] {
        assert!(
            invocations.contains_key(expected),
            "no `{expected}` found: is the parsing broken?"
        );
    }

    let mut problems = Vec::new();
    for (command, flags) in &invocations {
        let help = Command::new(env!("CARGO_BIN_EXE_lightspeed-sync"))
            .args([command.as_str(), "--help"])
            .output()
            .expect("run lightspeed-sync");
        if !help.status.success() {
            problems.push(format!("`lightspeed-sync {command}` is not a command"));
            continue;
        }
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in flags {
            if !mentions_flag(&help, flag) {
                problems.push(format!("`lightspeed-sync {command}` has no flag {flag}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn deploy_files_set_only_existing_settings() {
    let known = settings_of_example_config();
    let mut problems = Vec::new();
    for file in FILES {
        let text = super::read_repo_file(file);
        for var in env_vars(&text) {
            let mut parts = var.trim_start_matches("LSSYNC__").splitn(2, "__");
            let section = parts.next().unwrap_or_default().to_lowercase();
            let key = parts.next().unwrap_or_default().to_lowercase();
            if !known.contains(&(section, key)) {
                problems.push(format!("{file}: {var} is not a key of config.toml.example"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_flag_check_recognises_flags_in_real_help_output() {
    let help = Command::new(env!("CARGO_BIN_EXE_lightspeed-sync"))
        .args(["sync", "--help"])
        .output()
        .expect("run lightspeed-sync sync --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--account", "--stream", "--full", "--config"] {
        assert!(mentions_flag(&help, flag), "{flag} in:\n{help}");
    }
    for flag in ["--acc", "--accounts", "--fu"] {
        assert!(
            !mentions_flag(&help, flag),
            "{flag} is not a flag of sync:\n{help}"
        );
    }

    let mut found = Invocations::new();
    collect_shell_invocations(
        "docker compose run --rm lightspeed-sync sync --account=7 --full | tee log # note",
        &mut found,
    );
    collect_shell_invocations(
        "exec lightspeed-sync --config /etc/x.toml status --json'",
        &mut found,
    );
    let flags = |c: &str| found[c].iter().cloned().collect::<Vec<_>>();
    assert_eq!(flags("sync"), ["--account", "--full"]);
    assert_eq!(flags("status"), ["--json"]);
}

/// The parts of `text` that are commands rather than prose: in Markdown, fenced code blocks and
/// inline code spans; elsewhere, lines that are not comments, or comments indented by three spaces
/// or more (example commands).
fn code_lines(file: &str, text: &str) -> Vec<String> {
    let mut code = Vec::new();
    if file.ends_with(".md") {
        let mut fenced = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            } else if fenced {
                code.push(line.to_owned());
            } else {
                code.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
            }
        }
    } else {
        for line in text.lines() {
            let trimmed = line.trim_start();
            match trimmed.strip_prefix('#') {
                Some(comment) if comment.starts_with("   ") => code.push(comment.to_owned()),
                Some(_) => {}
                None => code.push(line.to_owned()),
            }
        }
    }
    code
}

/// `lightspeed-sync SUB --flag ...` (or `... compose run lightspeed-sync SUB --flag`) on one line.
fn collect_shell_invocations(line: &str, invocations: &mut Invocations) {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    for (i, token) in tokens.iter().enumerate() {
        let token = token.trim_start_matches('`');
        if !(token == "lightspeed-sync" || token.ends_with("/lightspeed-sync")) {
            continue;
        }
        let mut words = Vec::new();
        for next in &tokens[i + 1..] {
            if next.starts_with(['|', '&', ';', '>', '<', '#', ')']) {
                break;
            }
            let ends = next.ends_with('`');
            words.push(next.trim_matches(['`', '\'', '"']).to_owned());
            if ends {
                break;
            }
        }
        add_invocation(&words, invocations);
    }
}

/// Record `words` (subcommand first, then arguments) when they look like a command line.
fn add_invocation(words: &[String], invocations: &mut Invocations) {
    // The one global flag, `--config PATH`, may come before the command.
    let words = match words {
        [flag, _, rest @ ..] if flag == "--config" => rest,
        [flag, rest @ ..] if flag.starts_with("--config=") => rest,
        _ => words,
    };
    let Some(command) = words.first() else { return };
    if !command.starts_with(|c: char| c.is_ascii_lowercase())
        || !command.chars().all(|c| c.is_ascii_lowercase() || c == '-')
    {
        return;
    }
    let flags = invocations.entry(command.clone()).or_default();
    for word in &words[1..] {
        if word.starts_with("--") && word.len() > 2 {
            flags.insert(word.split('=').next().unwrap_or(word).to_owned());
        }
    }
}

/// `["sim", "--listen", "0.0.0.0:9090"]` → its words.
fn exec_form(args: &str) -> Vec<String> {
    args.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|w| w.trim().trim_matches('"').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether clap's help text lists `flag` (as `--flag` followed by a space, `=`, `,` or line end).
fn mentions_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let after = help[at + flag.len()..].chars().next();
        let before = help[..at].chars().next_back();
        !matches!(after, Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '-')
    })
}

/// `LSSYNC__SECTION__KEY` names in `text`, except the placeholder itself.
fn env_vars(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    text.match_indices("LSSYNC__")
        .map(|(at, _)| {
            let rest = &text[at..];
            let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
            rest[..end].trim_end_matches('_').to_owned()
        })
        .filter(|v| v != "LSSYNC__SECTION__KEY")
        .filter(|v| {
            let parts: Vec<&str> = v.trim_start_matches("LSSYNC__").split("__").collect();
            parts.len() >= 2 && parts.iter().all(|p| !p.is_empty())
        })
        .collect()
}

/// (section, key) of every setting documented in `config.toml.example`, commented out or not.
fn settings_of_example_config() -> BTreeSet<(String, String)> {
    let mut known = BTreeSet::new();
    let mut section = String::new();
    for line in super::read_repo_file("config.toml.example").lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let setting = line.trim_start_matches('#').trim_start();
        if let Some((key, _)) = setting.split_once(" = ")
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            known.insert((section.clone(), key.to_owned()));
        }
    }
    assert!(
        known.contains(&("database".into(), "url".into())),
        "config.toml.example parsing"
    );
    known
}
