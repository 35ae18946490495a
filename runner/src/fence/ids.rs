//! Mapping the process's own uid and gid into the user namespace it just entered.

/// Maps `inside_uid` to `outside_uid` (and the gids likewise) for this process's user
/// namespace. Supplementary groups cannot be mapped without privilege, so `setgroups` is
/// denied first, as the kernel requires.
pub fn map_self(
    inside_uid: u32,
    outside_uid: u32,
    inside_gid: u32,
    outside_gid: u32,
) -> Result<(), String> {
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| format!("cannot write /proc/self/{file}: {e}"))
    };
    write("setgroups", "deny".to_owned())?;
    write("uid_map", format!("{inside_uid} {outside_uid} 1\n"))?;
    write("gid_map", format!("{inside_gid} {outside_gid} 1\n"))
}
