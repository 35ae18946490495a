//! The benchmark's table: target, measured, reference, ratio; and the machine it ran on.

/// One line of the table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    /// What is measured.
    pub metric: String,
    /// The target.
    pub target: String,
    /// What kiln did.
    pub measured: String,
    /// The reference measured in the same run (or `-`).
    pub reference: String,
    /// kiln against the reference, when comparable.
    pub ratio: String,
    /// Whether the target was met; `None` when it has none.
    pub met: Option<bool>,
}

impl Row {
    /// A row without reference.
    pub fn new(metric: &str, target: &str, measured: String, met: Option<bool>) -> Self {
        Self {
            metric: metric.to_owned(),
            target: target.to_owned(),
            measured,
            reference: "-".to_owned(),
            ratio: "-".to_owned(),
            met,
        }
    }

    /// The same row with a reference and the ratio of measured to reference.
    pub fn against(mut self, reference: String, ratio: f64) -> Self {
        self.reference = reference;
        self.ratio = format!("{ratio:.2}x");
        self
    }
}

/// Prints the rows as a Markdown table.
pub fn print(rows: &[Row]) {
    println!("| metric | target | measured | reference (same run) | ratio | met |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        println!(
            "| {} | {} | {} | {} | {} | {met} |",
            row.metric, row.target, row.measured, row.reference, row.ratio
        );
    }
}

/// CPU model, cores, memory and kernel of this machine.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0);
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{model}, {cores} vCPU, {memory_gib:.0} GiB, Linux {kernel}")
}
