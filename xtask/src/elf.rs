//! Just enough ELF to tell what a router binary is: its machine and whether it needs a dynamic
//! loader. A package with the wrong one installs cleanly and then fails on the router with
//! "not found" (a missing loader) or "exec format error", so `dist` checks before packing.

/// What [`inspect`] read from an ELF header and its program headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_machine` (62 = x86-64, 183 = AArch64).
    pub machine: u16,
    /// Has a `PT_INTERP` program header: the kernel must start a dynamic loader first, which a
    /// static musl binary (static-pie included) does not need.
    pub needs_loader: bool,
}

/// The bytes are not a 64-bit little-endian ELF file this module can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    #[error("not an ELF file")]
    NotElf,
    /// A 32-bit or big-endian ELF file: no router target of ours is one.
    #[error("not a 64-bit little-endian ELF file")]
    Unsupported,
    /// The header or a program header lies beyond the end of the file.
    #[error("truncated ELF file: {what} ends past byte {len}")]
    Truncated {
        /// What was cut off.
        what: &'static str,
        /// The file's length.
        len: usize,
    },
}

/// `p_type` of the program header naming the dynamic loader.
const PT_INTERP: u32 = 3;

/// Reads the machine and the program headers of a 64-bit little-endian ELF file.
///
/// ```
/// let mut header = [0u8; 64];
/// header[..4].copy_from_slice(b"\x7fELF");
/// header[4] = 2; // 64-bit
/// header[5] = 1; // little-endian
/// header[18..20].copy_from_slice(&183u16.to_le_bytes()); // AArch64, no program headers
/// let info = xtask::elf::inspect(&header).unwrap();
/// assert_eq!((info.machine, info.needs_loader), (183, false));
/// ```
pub fn inspect(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    let header = bytes.get(..64).ok_or(ElfError::Truncated {
        what: "the ELF header",
        len: bytes.len(),
    })?;
    if !header.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if header.get(4..6) != Some(&[2, 1]) {
        return Err(ElfError::Unsupported);
    }
    let machine = u16_at(header, 18);
    let table_offset = u64_at(header, 32);
    let entry_size = usize::from(u16_at(header, 54));
    let count = usize::from(u16_at(header, 56));
    let program_headers = usize::try_from(table_offset)
        .ok()
        .and_then(|start| Some(start..start.checked_add(entry_size.checked_mul(count)?)?))
        .and_then(|range| bytes.get(range))
        .ok_or(ElfError::Truncated {
            what: "the program header table",
            len: bytes.len(),
        })?;
    let needs_loader = entry_size >= 4
        && program_headers
            .chunks_exact(entry_size)
            .any(|entry| u32_at(entry, 0) == PT_INTERP);
    Ok(ElfInfo {
        machine,
        needs_loader,
    })
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let mut field = [0; 2];
    if let Some(source) = bytes.get(at..at + 2) {
        field.copy_from_slice(source);
    }
    u16::from_le_bytes(field)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut field = [0; 4];
    if let Some(source) = bytes.get(at..at + 4) {
        field.copy_from_slice(source);
    }
    u32::from_le_bytes(field)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut field = [0; 8];
    if let Some(source) = bytes.get(at..at + 8) {
        field.copy_from_slice(source);
    }
    u64::from_le_bytes(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 LE header for `machine` with the given program header types (56 bytes each).
    fn elf(machine: u16, program_header_types: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&(program_header_types.len() as u16).to_le_bytes());
        for kind in program_header_types {
            let mut entry = vec![0u8; 56];
            entry[..4].copy_from_slice(&kind.to_le_bytes());
            bytes.extend(entry);
        }
        bytes
    }

    #[test]
    fn a_static_binary_needs_no_loader() {
        // PT_LOAD, PT_DYNAMIC (static-pie has one), PT_GNU_STACK
        let info = inspect(&elf(62, &[1, 2, 0x6474_e551])).unwrap();
        assert_eq!(
            info,
            ElfInfo {
                machine: 62,
                needs_loader: false
            }
        );
    }

    #[test]
    fn a_dynamic_binary_names_its_loader() {
        let info = inspect(&elf(183, &[6, 3, 1])).unwrap();
        assert!(info.needs_loader);
        assert_eq!(info.machine, 183);
    }

    #[test]
    fn the_test_binary_itself_is_read() {
        // This test runs as a host ELF binary: its machine must be readable and plausible.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = inspect(&me).unwrap();
        let expected = if cfg!(target_arch = "x86_64") {
            62
        } else {
            183
        };
        assert_eq!(info.machine, expected);
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert_eq!(
            inspect(b"#!/bin/sh\n"),
            Err(ElfError::Truncated {
                what: "the ELF header",
                len: 10
            })
        );
        assert_eq!(inspect(&[b'x'; 64]), Err(ElfError::NotElf));
        let mut big_endian = elf(62, &[]);
        big_endian[5] = 2;
        assert_eq!(inspect(&big_endian), Err(ElfError::Unsupported));
        let mut cut = elf(62, &[1, 3]);
        cut.truncate(100);
        assert!(matches!(inspect(&cut), Err(ElfError::Truncated { .. })));
        let mut huge = elf(62, &[]);
        huge[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        huge[56..58].copy_from_slice(&1u16.to_le_bytes());
        assert!(matches!(inspect(&huge), Err(ElfError::Truncated { .. })));
    }
}
