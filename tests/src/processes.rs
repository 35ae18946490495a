//! Processes on this machine seen from outside any fence: an agent's own pids are those of
//! its PID namespace, so tests find an agent's processes by the task id in their
//! environment (`KILN_TASK_ID`), which every process of its tree inherits.

/// The pids (in this test's PID namespace) of live processes whose environment holds
/// `KILN_TASK_ID=task`.
pub fn of_task(task: &str) -> Vec<i32> {
    let needle = format!("KILN_TASK_ID={task}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                !stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            });
            alive
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
}
