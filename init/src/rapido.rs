//! rapido's kernel parameters (SPEC §3.2) as validated values: the VM's
//! hostname and NIS domain, the console size, the MAC addresses the booted
//! system should expect, and systemd's machine id. Malformed values are
//! refused here so init can report and ignore them; nothing is fatal.

/// Longest hostname or domain the kernel keeps (`__NEW_UTS_LEN`).
pub const UTS_MAX: usize = 64;
/// How many `rapido.mac.IF=` parameters are kept.
pub const MAX_MACS: usize = 8;
/// Longest interface name (`IFNAMSIZ` less its NUL).
pub const IFNAME_MAX: usize = 15;

/// The hostname, and the NIS domain when `rapido.hostname=H.D` named one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names<'a> {
    /// What `hostname` prints.
    pub host: &'a [u8],
    /// What `domainname` prints; the text after the first dot.
    pub domain: Option<&'a [u8]>,
}

/// Why a value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `rapido.hostname=` with a character other than letters, digits, `-`
    /// and `.`, an empty part, or longer than [`UTS_MAX`].
    Hostname,
    /// `rapido.vm_num=` that is not a number.
    VmNum,
    /// `rapido.stty=` that is not `ROWS,COLS` in 1..=65535.
    Stty,
    /// `rapido.mac.IF=` that is not six hex pairs split by `:`, or a bad
    /// interface name.
    Mac,
    /// `systemd.machine_id=` that is not 32 hex digits.
    MachineId,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Refused::Hostname => "a hostname is letters, digits and '-', with an optional .domain",
            Refused::VmNum => "expected a number",
            Refused::Stty => "expected ROWS,COLS",
            Refused::Mac => "expected a MAC like 52:54:00:12:34:56 and an interface name",
            Refused::MachineId => "expected 32 hex digits",
        })
    }
}

/// The names for `rapido.hostname=` (split at its first dot) or, without
/// it, `rapidoN` for `rapido.vm_num=N`, written into `buf`. `Ok(None)` when
/// neither is given.
///
/// # Errors
/// [`Refused::Hostname`] or [`Refused::VmNum`] for malformed values.
pub fn names<'b>(
    hostname: Option<&[u8]>,
    vm_num: Option<&[u8]>,
    buf: &'b mut [u8; UTS_MAX * 2],
) -> Result<Option<Names<'b>>, Refused> {
    let name: &[u8] = match (hostname, vm_num) {
        (Some(name), _) => {
            let parts_ok = name.split(|&b| b == b'.').all(|part| {
                !part.is_empty() && part.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            });
            if !parts_ok || name.len() > UTS_MAX * 2 {
                return Err(Refused::Hostname);
            }
            name
        }
        (None, Some(number)) => {
            if number.is_empty() || number.len() > 10 || !number.iter().all(u8::is_ascii_digit) {
                return Err(Refused::VmNum);
            }
            let (prefix, rest) = buf.split_at_mut(b"rapido".len());
            prefix.copy_from_slice(b"rapido");
            rest[..number.len()].copy_from_slice(number);
            let len = prefix.len() + number.len();
            let (host, _) = buf.split_at(len);
            return Ok(Some(Names { host, domain: None }));
        }
        (None, None) => return Ok(None),
    };
    buf[..name.len()].copy_from_slice(name);
    let name = &buf[..name.len()];
    let (host, domain) = match name.iter().position(|&b| b == b'.') {
        Some(dot) => (&name[..dot], Some(&name[dot + 1..])),
        None => (name, None),
    };
    if host.len() > UTS_MAX || domain.is_some_and(|d| d.len() > UTS_MAX) {
        return Err(Refused::Hostname);
    }
    Ok(Some(Names { host, domain }))
}

/// `rapido.stty=ROWS,COLS` as (rows, columns).
///
/// # Errors
/// [`Refused::Stty`] unless both are numbers in 1..=65535.
pub fn stty(value: &[u8]) -> Result<(u16, u16), Refused> {
    let mut parts = value.split(|&b| b == b',');
    let (Some(rows), Some(cols), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Refused::Stty);
    };
    match (number(rows), number(cols)) {
        (Some(rows), Some(cols)) if rows > 0 && cols > 0 => Ok((rows, cols)),
        _ => Err(Refused::Stty),
    }
}

fn number(text: &[u8]) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = text.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).ok()
}

/// Checks `rapido.mac.IF=MAC`: an interface name usable as a file name
/// and environment variable part, and a MAC of six hex pairs.
///
/// # Errors
/// [`Refused::Mac`] otherwise.
pub fn mac(interface: &[u8], mac: &[u8]) -> Result<(), Refused> {
    let name_ok = !interface.is_empty()
        && interface.len() <= IFNAME_MAX
        && interface
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let pairs_ok = mac.len() == 17
        && mac.chunks(3).all(|chunk| {
            chunk[..2].iter().all(u8::is_ascii_hexdigit) && chunk.get(2).is_none_or(|&b| b == b':')
        });
    if name_ok && pairs_ok {
        Ok(())
    } else {
        Err(Refused::Mac)
    }
}

/// Checks `systemd.machine_id=`: 32 hex digits, as machine-id(5) wants.
///
/// # Errors
/// [`Refused::MachineId`] otherwise.
pub fn machine_id(value: &[u8]) -> Result<(), Refused> {
    if value.len() == 32 && value.iter().all(u8::is_ascii_hexdigit) {
        Ok(())
    } else {
        Err(Refused::MachineId)
    }
}

/// The environment variable name part for interface `interface`:
/// `RAPIDO_MAC_` then the name upper-cased, `-` as `_`.
pub fn env_byte(byte: u8) -> u8 {
    match byte {
        b'-' => b'_',
        other => other.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_splits_at_the_first_dot() {
        let mut buf = [0; UTS_MAX * 2];
        let names = names(Some(b"box.example.org"), Some(b"3"), &mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(names.host, b"box");
        assert_eq!(names.domain, Some(&b"example.org"[..]));
        let mut buf = [0; UTS_MAX * 2];
        let names = super::names(Some(b"box"), None, &mut buf).unwrap().unwrap();
        assert_eq!((names.host, names.domain), (&b"box"[..], None));
    }

    #[test]
    fn vm_num_names_the_host_when_no_hostname() {
        let mut buf = [0; UTS_MAX * 2];
        let names = names(None, Some(b"12"), &mut buf).unwrap().unwrap();
        assert_eq!((names.host, names.domain), (&b"rapido12"[..], None));
        let mut buf = [0; UTS_MAX * 2];
        assert_eq!(super::names(None, None, &mut buf), Ok(None));
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            &b"a b"[..],
            b"box..x",
            b".box",
            b"box.",
            b"a/b",
            &[b'a'; 65],
        ] {
            let mut buf = [0; UTS_MAX * 2];
            assert_eq!(
                names(Some(bad), None, &mut buf),
                Err(Refused::Hostname),
                "{bad:?}"
            );
        }
        let mut buf = [0; UTS_MAX * 2];
        assert_eq!(names(None, Some(b"x1"), &mut buf), Err(Refused::VmNum));
        let mut buf = [0; UTS_MAX * 2];
        assert_eq!(
            names(None, Some(b"99999999999"), &mut buf),
            Err(Refused::VmNum)
        );
    }

    #[test]
    fn stty_is_rows_then_columns() {
        assert_eq!(stty(b"40,120"), Ok((40, 120)));
        for bad in [
            &b"abc"[..],
            b"40",
            b"40,",
            b",1",
            b"0,10",
            b"40,120,1",
            b"70000,1",
            b"4x,1",
        ] {
            assert_eq!(stty(bad), Err(Refused::Stty), "{bad:?}");
        }
    }

    #[test]
    fn macs_and_machine_ids() {
        assert_eq!(mac(b"eth0", b"52:54:00:12:34:56"), Ok(()));
        for (interface, value) in [
            (&b"eth0"[..], &b"52:54:00:12:34"[..]),
            (b"eth0", b"52-54-00-12-34-56"),
            (b"eth0", b"5g:54:00:12:34:56"),
            (b"", b"52:54:00:12:34:56"),
            (b"../x", b"52:54:00:12:34:56"),
        ] {
            assert_eq!(mac(interface, value), Err(Refused::Mac));
        }
        assert_eq!(machine_id(b"0123456789abcdef0123456789abcdef"), Ok(()));
        assert_eq!(machine_id(b"0123"), Err(Refused::MachineId));
        assert_eq!(env_byte(b'h'), b'H');
        assert_eq!(env_byte(b'-'), b'_');
    }
}
