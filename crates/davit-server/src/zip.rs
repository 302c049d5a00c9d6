//! The ZIP format for downloading a collection whole, sans I/O: members are stored (not
//! compressed), so the archive's exact length is known from the members' names and sizes
//! before a byte of content is read, and a browser can show the download's progress. Each
//! file's CRC-32 is computed while it streams and written after it (a data descriptor,
//! general-purpose flag bit 3), so nothing is read twice. ZIP64 records are used only where a
//! size, an offset or the member count needs them. Names are UTF-8 (flag bit 11).
//!
//! [`Layout`] is the one source of every length: the handler's `Content-Length` and the
//! writer's offsets come from it, and the tests check them against the bytes written.

use std::time::{SystemTime, UNIX_EPOCH};

/// One member of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its path inside the archive, `/`-separated; a collection's ends in `/`.
    pub name: String,
    /// Content length (0 for collections).
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
}

impl Member {
    fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
    /// Sizes too large for the 32-bit fields.
    fn zip64_sizes(&self) -> bool {
        self.size >= u64::from(u32::MAX)
    }
}

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
const ZIP64_END_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
/// Bit 3 (sizes and CRC in a data descriptor) and bit 11 (UTF-8 names).
const FLAGS_FILE: u16 = 0x0808;
const FLAGS_DIR: u16 = 0x0800;
/// Made by: Unix (3), format 4.5 (ZIP64).
const MADE_BY: u16 = (3 << 8) | 45;
const EXT_TIMESTAMP_LEN: u64 = 9;
const MAX16: u64 = 0xFFFF;
const MAX32: u64 = 0xFFFF_FFFF;

fn local_header_len(m: &Member) -> u64 {
    30 + m.name.len() as u64 + EXT_TIMESTAMP_LEN + if m.zip64_sizes() { 20 } else { 0 }
}

fn descriptor_len(m: &Member) -> u64 {
    match (m.is_dir(), m.zip64_sizes()) {
        (true, _) => 0,
        (false, true) => 24,
        (false, false) => 16,
    }
}

/// The ZIP64 extra field of a central record: sizes and offset that do not fit 32 bits.
fn central_zip64_fields(m: &Member, offset: u64) -> usize {
    (if m.zip64_sizes() { 2 } else { 0 }) + usize::from(offset >= MAX32)
}

fn central_len(m: &Member, offset: u64) -> u64 {
    let fields = central_zip64_fields(m, offset) as u64;
    46 + m.name.len() as u64 + EXT_TIMESTAMP_LEN + if fields > 0 { 4 + 8 * fields } else { 0 }
}

fn needs_zip64_end(count: u64, cd_offset: u64, cd_size: u64) -> bool {
    count >= MAX16 || cd_offset >= MAX32 || cd_size >= MAX32
}

/// Where everything of an archive of given members goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The offset of each member's local header.
    pub offsets: Vec<u64>,
    /// Where the central directory starts.
    pub central_offset: u64,
    /// Its length.
    pub central_len: u64,
    /// The whole archive's length.
    pub total: u64,
}

impl Layout {
    /// The layout of an archive of `members`, in that order.
    pub fn of(members: &[Member]) -> Layout {
        let mut offsets = Vec::with_capacity(members.len());
        let mut at = 0u64;
        for m in members {
            offsets.push(at);
            at += local_header_len(m) + m.size + descriptor_len(m);
        }
        let central_offset = at;
        let central_len: u64 = members
            .iter()
            .zip(&offsets)
            .map(|(m, &o)| central_len(m, o))
            .sum();
        let count = members.len() as u64;
        let end = 22
            + if needs_zip64_end(count, central_offset, central_len) {
                56 + 20
            } else {
                0
            };
        Layout {
            total: central_offset + central_len + end,
            offsets,
            central_offset,
            central_len,
        }
    }
}

/// MS-DOS date and time (local time by the format; written as UTC, and the extended
/// timestamp field carries the exact UTC second for unzip tools that read it).
fn dos_time(t: SystemTime) -> (u16, u16) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .max(315_532_800); // 1980-01-01, the earliest DOS date
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let year = year.clamp(1980, 2107);
    let date = ((year - 1980) << 9) as u16 | (month << 5) as u16 | day as u16;
    let time =
        ((rem / 3600) << 11) as u16 | (((rem % 3600) / 60) << 5) as u16 | (rem % 60 / 2) as u16;
    (time, date)
}

fn unix_seconds(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(u64::from(u32::MAX)) as u32
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
/// A 32-bit field, or the ZIP64 marker when the value needs the extra field.
fn field32(v: u64) -> u32 {
    if v >= MAX32 {
        u32::MAX
    } else {
        v as u32
    }
}

fn ext_timestamp(out: &mut Vec<u8>, m: &Member) {
    put16(out, 0x5455);
    put16(out, 5);
    out.push(1); // modification time present
    put32(out, unix_seconds(m.modified));
}

/// The local header that goes before a member's content.
pub fn local_header(m: &Member, out: &mut Vec<u8>) {
    let (time, date) = dos_time(m.modified);
    let dir = m.is_dir();
    put32(out, LOCAL_SIG);
    put16(out, if m.zip64_sizes() { 45 } else { 20 });
    put16(out, if dir { FLAGS_DIR } else { FLAGS_FILE });
    put16(out, 0); // stored
    put16(out, time);
    put16(out, date);
    put32(out, 0); // CRC: in the descriptor
    let size_field = if m.zip64_sizes() { u32::MAX } else { 0 };
    put32(out, size_field);
    put32(out, size_field);
    put16(out, m.name.len() as u16);
    let extra = EXT_TIMESTAMP_LEN as u16 + if m.zip64_sizes() { 20 } else { 0 };
    put16(out, extra);
    out.extend_from_slice(m.name.as_bytes());
    ext_timestamp(out, m);
    if m.zip64_sizes() {
        put16(out, 1);
        put16(out, 16);
        put64(out, 0);
        put64(out, 0);
    }
}

/// The data descriptor that follows a file's content (nothing for a collection).
pub fn descriptor(m: &Member, crc: u32, out: &mut Vec<u8>) {
    if m.is_dir() {
        return;
    }
    put32(out, DESCRIPTOR_SIG);
    put32(out, crc);
    if m.zip64_sizes() {
        put64(out, m.size);
        put64(out, m.size);
    } else {
        put32(out, m.size as u32);
        put32(out, m.size as u32);
    }
}

/// A member's record in the central directory.
pub fn central_record(m: &Member, crc: u32, offset: u64, out: &mut Vec<u8>) {
    let (time, date) = dos_time(m.modified);
    let dir = m.is_dir();
    let fields = central_zip64_fields(m, offset);
    put32(out, CENTRAL_SIG);
    put16(out, MADE_BY);
    put16(out, if fields > 0 { 45 } else { 20 });
    put16(out, if dir { FLAGS_DIR } else { FLAGS_FILE });
    put16(out, 0);
    put16(out, time);
    put16(out, date);
    put32(out, crc);
    put32(out, field32(m.size));
    put32(out, field32(m.size));
    put16(out, m.name.len() as u16);
    let extra = EXT_TIMESTAMP_LEN as u16 + if fields > 0 { 4 + 8 * fields as u16 } else { 0 };
    put16(out, extra);
    put16(out, 0); // comment
    put16(out, 0); // disk
    put16(out, 0); // internal attributes
    let mode: u32 = if dir { 0o40755 } else { 0o100644 };
    put32(out, (mode << 16) | if dir { 0x10 } else { 0 });
    put32(out, field32(offset));
    out.extend_from_slice(m.name.as_bytes());
    ext_timestamp(out, m);
    if fields > 0 {
        put16(out, 1);
        put16(out, 8 * fields as u16);
        if m.zip64_sizes() {
            put64(out, m.size);
            put64(out, m.size);
        }
        if offset >= MAX32 {
            put64(out, offset);
        }
    }
}

/// The end records: ZIP64 ones when needed, then the classic one.
pub fn end(count: u64, central_offset: u64, central_len: u64, out: &mut Vec<u8>) {
    if needs_zip64_end(count, central_offset, central_len) {
        let record_at = central_offset + central_len;
        put32(out, ZIP64_END_SIG);
        put64(out, 44);
        put16(out, MADE_BY);
        put16(out, 45);
        put32(out, 0);
        put32(out, 0);
        put64(out, count);
        put64(out, count);
        put64(out, central_len);
        put64(out, central_offset);
        put32(out, ZIP64_LOCATOR_SIG);
        put32(out, 0);
        put64(out, record_at);
        put32(out, 1);
    }
    put32(out, END_SIG);
    put16(out, 0);
    put16(out, 0);
    let n = count.min(MAX16) as u16;
    put16(out, n);
    put16(out, n);
    put32(out, field32(central_len));
    put32(out, field32(central_offset));
    put16(out, 0);
}

/// Whether a name can go into an archive: ZIP stores name lengths in 16 bits.
pub fn name_fits(name: &str) -> bool {
    name.len() < MAX16 as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Writes a whole archive with content of repeated bytes, as the handler does.
    fn write(members: &[Member]) -> Vec<u8> {
        let layout = Layout::of(members);
        let mut out = Vec::new();
        let mut crcs = Vec::new();
        for (i, m) in members.iter().enumerate() {
            assert_eq!(out.len() as u64, layout.offsets[i], "offset of {}", m.name);
            local_header(m, &mut out);
            let content = vec![b'a' + (i % 26) as u8; m.size as usize];
            let crc = crc32fast::hash(&content);
            out.extend_from_slice(&content);
            descriptor(m, crc, &mut out);
            crcs.push(crc);
        }
        assert_eq!(out.len() as u64, layout.central_offset);
        for (i, m) in members.iter().enumerate() {
            central_record(m, crcs[i], layout.offsets[i], &mut out);
        }
        assert_eq!(out.len() as u64, layout.central_offset + layout.central_len);
        end(
            members.len() as u64,
            layout.central_offset,
            layout.central_len,
            &mut out,
        );
        assert_eq!(out.len() as u64, layout.total);
        out
    }

    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_le_bytes([b[i], b[i + 1]])
    }
    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }

    #[test]
    fn small_archive_reads_back_from_its_central_directory() {
        let members = vec![
            Member {
                name: "top/".into(),
                size: 0,
                modified: at(1_700_000_000),
            },
            Member {
                name: "top/a ü.txt".into(),
                size: 5,
                modified: at(1_700_000_000),
            },
            Member {
                name: "top/empty".into(),
                size: 0,
                modified: at(0),
            },
        ];
        let z = write(&members);
        // The end record points at the central directory, which names each member at its
        // local header with its CRC and sizes.
        let eocd = z.len() - 22;
        assert_eq!(u32_at(&z, eocd), END_SIG);
        assert_eq!(u16_at(&z, eocd + 10), 3);
        let mut p = u32_at(&z, eocd + 16) as usize;
        for (i, m) in members.iter().enumerate() {
            assert_eq!(u32_at(&z, p), CENTRAL_SIG);
            let crc = u32_at(&z, p + 16);
            let size = u32_at(&z, p + 24);
            let name_len = u16_at(&z, p + 28) as usize;
            let extra_len = u16_at(&z, p + 30) as usize;
            let offset = u32_at(&z, p + 42) as usize;
            assert_eq!(&z[p + 46..p + 46 + name_len], m.name.as_bytes());
            assert_eq!(u64::from(size), m.size);
            assert_eq!(u32_at(&z, offset), LOCAL_SIG);
            let lname = u16_at(&z, offset + 26) as usize;
            let lextra = u16_at(&z, offset + 28) as usize;
            let data = offset + 30 + lname + lextra;
            let content = &z[data..data + size as usize];
            assert_eq!(crc, crc32fast::hash(content), "{}", m.name);
            if i == 1 {
                assert_eq!(content, b"bbbbb");
                assert_eq!(u32_at(&z, data + 5), DESCRIPTOR_SIG);
            }
            p += 46 + name_len + extra_len;
        }
        assert_eq!(p, eocd);
    }

    #[test]
    fn dos_dates_are_civil_dates() {
        // 2024-02-29 13:14:16 UTC.
        let (time, date) = dos_time(at(1_709_212_456));
        assert_eq!(date >> 9, 2024 - 1980);
        assert_eq!((date >> 5) & 0xF, 2);
        assert_eq!(date & 0x1F, 29);
        assert_eq!(time >> 11, 13);
        assert_eq!((time >> 5) & 0x3F, 14);
        assert_eq!((time & 0x1F) * 2, 16);
        // Before 1980: the earliest DOS date.
        assert_eq!(dos_time(at(0)), (0, (1 << 5) | 1));
    }

    #[test]
    fn zip64_only_where_needed_and_lengths_agree() {
        let m = |name: &str, size: u64| Member {
            name: name.into(),
            size,
            modified: at(1_700_000_000),
        };
        // A member of 4 GiB: its sizes need ZIP64 fields in the local header, the descriptor
        // and the central record; the small one after it has an offset past 4 GiB.
        let members = [m("big", 1 << 32), m("small", 3)];
        let layout = Layout::of(&members);
        let mut lh = Vec::new();
        local_header(&members[0], &mut lh);
        assert_eq!(lh.len() as u64, local_header_len(&members[0]));
        assert_eq!(u32_at(&lh, 18), u32::MAX);
        let mut d = Vec::new();
        descriptor(&members[0], 7, &mut d);
        assert_eq!(d.len(), 24);
        let mut c0 = Vec::new();
        central_record(&members[0], 7, layout.offsets[0], &mut c0);
        assert_eq!(c0.len() as u64, central_len(&members[0], layout.offsets[0]));
        assert_eq!(u32_at(&c0, 42), 0, "the first offset fits");
        let mut c1 = Vec::new();
        central_record(&members[1], 7, layout.offsets[1], &mut c1);
        assert!(layout.offsets[1] > MAX32);
        assert_eq!(c1.len() as u64, central_len(&members[1], layout.offsets[1]));
        assert_eq!(u32_at(&c1, 42), u32::MAX);
        // The offset is in the extra field, after the timestamp.
        let extra = 46 + "small".len() + EXT_TIMESTAMP_LEN as usize;
        assert_eq!(u16_at(&c1, extra), 1);
        assert_eq!(
            u64::from_le_bytes(c1[extra + 4..extra + 12].try_into().unwrap()),
            layout.offsets[1]
        );
        let mut e = Vec::new();
        end(2, layout.central_offset, layout.central_len, &mut e);
        assert_eq!(e.len(), 56 + 20 + 22);
        assert_eq!(
            layout.total,
            layout.central_offset + layout.central_len + 98
        );
        // Small archives have no ZIP64 record at all.
        let small = [m("a", 1), m("b/", 0)];
        let z = write(&small);
        assert!(!z
            .windows(4)
            .any(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) == ZIP64_END_SIG));
        assert_eq!(u16_at(&z, 4), 20, "version needed");
    }

    #[test]
    fn many_members_get_a_zip64_end() {
        let members: Vec<Member> = (0..70_000)
            .map(|i| Member {
                name: format!("f{i}"),
                size: 0,
                modified: at(1_700_000_000),
            })
            .collect();
        let z = write(&members);
        let eocd = z.len() - 22;
        assert_eq!(u16_at(&z, eocd + 10), 0xFFFF);
        let loc = eocd - 20;
        assert_eq!(u32_at(&z, loc), ZIP64_LOCATOR_SIG);
        let rec = u64::from_le_bytes(z[loc + 8..loc + 16].try_into().unwrap()) as usize;
        assert_eq!(u32_at(&z, rec), ZIP64_END_SIG);
        assert_eq!(
            u64::from_le_bytes(z[rec + 32..rec + 40].try_into().unwrap()),
            70_000
        );
    }
}
