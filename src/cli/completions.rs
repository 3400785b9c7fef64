//! `airlock completions bash|zsh|fish` and `airlock man`: both generated from the clap
//! command definitions in `mod.rs`, so they never drift from what the parser accepts.

use std::io::Write;
use std::process::ExitCode;

use clap::ValueEnum;

use super::Failure;

/// The shells SPEC 2 names.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `cmd`: the whole command line, `Cli::command()`.
pub fn completions(cmd: clap::Command, shell: Shell) -> Result<ExitCode, Failure> {
    // clap_complete offers hidden subcommands in bash and fish: offer the visible ones only
    // (the parser is not involved, so the top level's own settings do not matter here).
    let mut cmd = clap::Command::new("airlock")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "airlock", &mut out);
    emit(&out)
}

/// One page for the whole tool: clap_mangen's title, synopsis, description and global options,
/// then every command with its own usage and options (clap_mangen would instead point at
/// per-command pages, `airlock-start(1)`, that `airlock man` does not print), then what the
/// parser does not know.
pub fn man(mut cmd: clap::Command) -> Result<ExitCode, Failure> {
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let rendered = page
        .render_title(&mut out)
        .and_then(|()| page.render_name_section(&mut out))
        .and_then(|()| page.render_synopsis_section(&mut out))
        .and_then(|()| page.render_description_section(&mut out))
        .and_then(|()| page.render_options_section(&mut out));
    rendered.map_err(|e| Failure::runtime(format!("cannot render the man page: {e}")))?;
    let mut text = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        commands_section(&cmd, sub, &mut text);
    }
    out.extend_from_slice(text.as_bytes());
    page.render_version_section(&mut out)
        .map_err(|e| Failure::runtime(format!("cannot render the man page: {e}")))?;
    out.extend_from_slice(MAN_EXTRA.as_bytes());
    emit(&out)
}

/// `.SS airlock NAME`, its usage, what it does, its own options; then its sub-commands.
fn commands_section(root: &clap::Command, cmd: &clap::Command, out: &mut String) {
    if cmd.is_hide_set() || cmd.get_name() == "help" {
        return;
    }
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    out.push_str(&format!(".SS \"{}\"\n", roff_escape(name)));
    out.push_str(&format!("\\fB{}\\fR\n.PP\n", roff_escape(usage)));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        out.push_str(&format!("{}\n", roff_escape(&about.to_string())));
    }
    let global = |id: &clap::Id| {
        root.get_arguments()
            .any(|a| a.get_id() == id && a.is_global_set())
    };
    for arg in cmd.get_arguments() {
        let id = arg.get_id();
        if arg.is_hide_set() || id == "help" || id == "version" || global(id) {
            continue;
        }
        let value = arg
            .get_value_names()
            .map(|names| names.iter().map(|n| format!("<{n}>")).collect::<Vec<_>>())
            .unwrap_or_else(|| vec![format!("<{}>", id.as_str().to_uppercase())])
            .join(" ");
        let label = if arg.is_positional() {
            value
        } else {
            let mut names = Vec::new();
            if let Some(short) = arg.get_short() {
                names.push(format!("-{short}"));
            }
            if let Some(long) = arg.get_long() {
                names.push(format!("--{long}"));
            }
            let mut label = names.join(", ");
            if arg.get_action().takes_values() {
                label = format!("{label} {value}");
            }
            label
        };
        let mut help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let choices: Vec<_> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !choices.is_empty() && arg.get_action().takes_values() {
            help.push_str(&format!(" [possible values: {}]", choices.join(", ")));
        }
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && arg.get_action().takes_values() {
            help.push_str(&format!(" [default: {}]", defaults.join(", ")));
        }
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff_escape(&label),
            roff_escape(help.trim())
        ));
    }
    for sub in cmd.get_subcommands() {
        commands_section(root, sub, out);
    }
}

/// Text as roff shows it: backslashes and minus signs escaped, one line, and no line that
/// starts like a request.
fn roff_escape(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut escaped = String::with_capacity(one_line.len());
    for c in one_line.chars() {
        match c {
            '\\' => escaped.push_str("\\e"),
            '-' => escaped.push_str("\\-"),
            // Plain groff reads bytes: anything past ASCII by its code point.
            c if !c.is_ascii() => escaped.push_str(&format!("\\[u{:04X}]", c as u32)),
            c => escaped.push(c),
        }
    }
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// What the parser does not know: environment, exit status, files (SPEC 2 and 3).
const MAN_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBAIRLOCK_HOME\fR
The data directory (CA, logs, store, pid file); default \fI$XDG_DATA_HOME/airlock\fR or \fI~/.local/share/airlock\fR.
.TP
\fBAIRLOCK_CONFIG\fR
A config file (YAML or JSON), as \fB\-\-config\fR.
.SH EXIT STATUS
0 success, 1 runtime failure, 2 usage or config error. Errors are one line on standard error.
.SH FILES
.TP
\fIca/airlock\-ca.pem\fR, \fIca/airlock\-ca.key\fR
The local CA, generated at the first start (the key is mode 0600).
.TP
\fIca/bundle.pem\fR
The system's trusted roots plus the airlock CA, what \fBairlock run\fR hands to clients.
.TP
\fIlogs/flows.jsonl\fR, \fIlogs/threats.jsonl\fR, \fIlogs/llm.jsonl\fR
The audit logs, one JSON record per line, hash-chained (\fBairlock audit verify\fR).
.TP
\fIairlock.db\fR
The SQLite store behind \fBlogs\fR, \fBusage\fR, \fBthreats\fR and the dashboard.
.TP
\fIairlock.pid\fR
The running instance's pid.
.SH SEE ALSO
\fBairlock\fR \fICOMMAND\fR \fB\-\-help\fR: one command's usage and options.
"#;

fn emit(bytes: &[u8]) -> Result<ExitCode, Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::runtime(format!("cannot write to standard output: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
