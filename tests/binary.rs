//! What the build gives the `statusd` binary itself: its relocations (`build.rs`) and its
//! allocator's options (`src/main.rs`).
//!
//! Its relative relocations are packed (DT_RELR) where the C library that will load it reads
//! them (glibc 2.36 and later): as RELA entries they were 1.5 MB that the loader reads at start
//! and that stay resident (README, Benchmarks: "Packed relocations"). On an older glibc they must
//! not be, since its loader would refuse the binary.

/// The ELF dynamic-section tags read here (the System V ABI; DT_RELR from its 2022 revision).
const DT_NULL: u64 = 0;
const DT_RELASZ: u64 = 8;
const DT_RELR: u64 = 36;
/// The program header of the dynamic section.
const PT_DYNAMIC: u32 = 2;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn usize_at(bytes: &[u8], at: usize) -> usize {
    usize::try_from(u64_at(bytes, at)).expect("an offset within the file")
}

/// The (tag, value) entries of a little-endian ELF64 file's dynamic section, read through its
/// program headers as the loader reads them.
fn dynamic_entries(elf: &[u8]) -> Vec<(u64, u64)> {
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "ELF64, little-endian");
    let (table, entry_size, count) =
        (usize_at(elf, 0x20), usize::from(u16_at(elf, 0x36)), usize::from(u16_at(elf, 0x38)));
    let dynamic = (0..count)
        .map(|n| table + n * entry_size)
        .find(|&header| u32_at(elf, header) == PT_DYNAMIC)
        .expect("a dynamically linked binary has a dynamic section");
    let (offset, size) = (usize_at(elf, dynamic + 8), usize_at(elf, dynamic + 32));
    elf[offset..offset + size]
        .chunks_exact(16)
        .map(|entry| (u64_at(entry, 0), u64_at(entry, 8)))
        .take_while(|&(tag, _)| tag != DT_NULL)
        .collect()
}

/// This machine's glibc, asked as `build.rs` asks it but not through its code: shared, a
/// `build.rs` that misread the version (never packing) would agree with this test and pass.
fn glibc() -> Option<(u32, u32)> {
    let output = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64", target_endian = "little"))]
fn the_binary_packs_its_relocations_where_the_c_library_reads_them() {
    let elf = std::fs::read(env!("CARGO_BIN_EXE_statusd")).expect("the statusd binary");
    let entries = dynamic_entries(&elf);
    let tag = |wanted: u64| entries.iter().find(|&&(tag, _)| tag == wanted).map(|&(_, value)| value);
    if glibc().is_some_and(|version| version >= (2, 36)) {
        assert!(tag(DT_RELR).is_some(), "no DT_RELR: the relative relocations are not packed");
        // What stays as RELA entries: the few that are not relative (GOT entries of symbols).
        let rela = tag(DT_RELASZ).unwrap_or(0);
        assert!(rela < 64 * 1024, "{rela} bytes of RELA relocations left, where unpacked they were 1.5 MB");
    } else {
        assert!(tag(DT_RELR).is_none(), "DT_RELR on a glibc older than 2.36, whose loader refuses it");
    }
}

/// jemalloc's options are built into the binary (`_rjem_malloc_conf` in `src/main.rs`; README,
/// Benchmarks: "jemalloc's options, built in"). jemalloc says which it read when asked to confirm
/// them (`confirm_conf`, jemalloc(3)), on its first allocation, before statusd parses its
/// arguments.
#[test]
#[cfg(target_os = "linux")]
fn the_binary_starts_jemalloc_with_its_built_in_options() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_statusd"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "confirm_conf:true")
        .output()
        .expect("statusd runs");
    assert!(output.status.success(), "statusd --version failed: {output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    for option in ["narenas:1", "dirty_decay_ms:1000", "tcache_max:8192"] {
        assert!(said.contains(&format!("-- Set conf value: {option}\n")), "jemalloc did not set {option}:\n{said}");
    }
}
