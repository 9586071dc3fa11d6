//! `refuge synth`: write a synthetic caseload (docs/synth.md) to a CSV, JSON Lines or `.rcl`
//! file, for trying programmes and reforms at scale without anyone's data.

use crate::usage;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use refuge_core::clock::{Clock, SystemClock};
use refuge_core::facts::parse_date;
use refuge_rules::caseload::CaseloadFormat;
use refuge_rules::synth::synth_with_progress;
use serde_json::json;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The most people `synth` generates: about 6.5 GB of memory at 65 bytes a person.
const MAX_COUNT: usize = 100_000_000;
/// From this many people on, progress is shown (on a terminal).
const PROGRESS_FROM: usize = 100_000;

/// Generate a synthetic caseload: invented people who left Russia, Belarus or Ukraine because
/// of military service, with distributions drawn from the source documents (docs/synth.md).
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// How many people to generate.
    #[arg(long, value_name = "N")]
    pub count: usize,
    /// Seed: the same seed, count and date always give the same file.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// File to write; its extension picks the format: .csv, .jsonl or .rcl.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The date the caseload describes (ages, stays, expiry dates), YYYY-MM-DD [default: today].
    #[arg(long, value_name = "DATE")]
    pub on: Option<String>,
}

/// Generates the caseload and writes it atomically (a temporary file beside `--out`, then a
/// rename), printing a one-line summary, or a JSON object with `--format json`.
pub fn run(args: &SynthArgs, json: bool) -> anyhow::Result<()> {
    let out = &args.out;
    if out.is_dir() {
        return Err(usage(format!("--out {}: is a directory", out.display())));
    }
    let format = CaseloadFormat::from_path(out)
        .map_err(|e| usage(format!("--out {}: {e}", out.display())))?;
    if args.count > MAX_COUNT {
        return Err(usage(format!(
            "--count {}: at most {MAX_COUNT} people (65 bytes each in memory)",
            args.count
        )));
    }
    let on = match &args.on {
        Some(text) => parse_date(text.trim())
            .ok_or_else(|| usage(format!("--on: expected a date YYYY-MM-DD; found {text:?}")))?,
        None => SystemClock.today(),
    };

    let start = Instant::now();
    let bar = progress_bar(args.count);
    bar.set_message("generating");
    let caseload = synth_with_progress(args.count, args.seed, on, &|rows| bar.set_position(rows));
    bar.set_message("writing");
    bar.set_position(0);
    let tmp = crate::input::private_temp_beside(out)?;
    let written = write(&tmp, out, &|rows| bar.set_position(rows), |w, progress| {
        caseload.write_as(format, w, progress)
    });
    bar.finish_and_clear();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let seconds = start.elapsed().as_secs_f64();

    if json {
        let summary = json!({
            "file": out.display().to_string(),
            "rows": caseload.len(),
            "format": format.extension(),
            "seed": args.seed,
            "on": on.to_string(),
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "wrote {} synthetic people to {} ({format}, seed {}, on {on}) in {seconds:.2} s",
            caseload.len(),
            out.display(),
            args.seed,
        );
    }
    Ok(())
}

/// Writes through `write_to` into `tmp`, makes it durable, and renames it to `target`.
fn write(
    tmp: &Path,
    target: &Path,
    progress: &dyn Fn(u64),
    write_to: impl FnOnce(&mut BufWriter<File>, &dyn Fn(u64)) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let context = || format!("cannot write {}", target.display());
    let file = File::options()
        .write(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| anyhow::Error::new(e).context(context()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_to(&mut w, progress).map_err(|e| anyhow::Error::new(e).context(context()))?;
    w.flush()
        .map_err(|e| anyhow::Error::new(e).context(context()))?;
    let file = w
        .into_inner()
        .map_err(|e| anyhow::Error::new(e.into_error()).context(context()))?;
    file.sync_all()
        .map_err(|e| anyhow::Error::new(e).context(context()))?;
    std::fs::rename(tmp, target).map_err(|e| anyhow::Error::new(e).context(context()))?;
    Ok(())
}

/// A progress bar on standard error counting people, shown for large counts on a terminal.
fn progress_bar(count: usize) -> ProgressBar {
    if count < PROGRESS_FROM {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(count as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {human_pos}/{human_len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
