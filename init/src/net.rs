//! Static network setup from the kernel's `ip=` parameter, which Debian's
//! kernel does not act on itself (no CONFIG_IP_PNP): the parsed value, and
//! the ioctl requests that apply it built as bytes, so the layouts are
//! tested here and the binary only hands them to the kernel.
//!
//! The syntax is the kernel's (Documentation/admin-guide/nfs/nfsroot.rst):
//! `ip=ADDR:SERVER:GW:NETMASK:HOSTNAME:DEVICE:AUTOCONF:DNS0:DNS1:NTP0`,
//! of which init uses ADDR, GW, NETMASK, DEVICE, DNS0 and DNS1. In the
//! eighth field a plain number is dracut's MTU (`...:off:1500`) rather
//! than a DNS server, which always has dots: both syntaxes read right.

/// An IPv4 address, in network order.
pub type Ipv4 = [u8; 4];

/// What `ip=` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpConfig<'a> {
    /// The interface (`eth0`).
    pub device: &'a [u8],
    /// Its address.
    pub addr: Ipv4,
    /// Its netmask.
    pub netmask: Ipv4,
    /// The default route's gateway.
    pub gateway: Option<Ipv4>,
    /// Name servers, as given (checked to be addresses).
    pub dns: [Option<&'a [u8]>; 2],
    /// The link's MTU.
    pub mtu: Option<u32>,
}

impl<'a> IpConfig<'a> {
    /// Parses an `ip=` value; `None` for what init cannot apply: not the
    /// static form (DHCP needs a client init lacks), or a field that is
    /// not what it should be.
    ///
    /// # Example
    /// ```
    /// use init::net::IpConfig;
    /// let ip = IpConfig::parse(b"10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3").unwrap();
    /// assert_eq!(ip.device, b"eth0");
    /// assert_eq!(ip.gateway, Some([10, 0, 2, 2]));
    /// assert_eq!(ip.dns[0], Some(&b"10.0.2.3"[..]));
    /// ```
    pub fn parse(value: &'a [u8]) -> Option<IpConfig<'a>> {
        let mut field = [&b""[..]; 9];
        for (slot, text) in field.iter_mut().zip(value.split(|&b| b == b':')) {
            *slot = text;
        }
        let [
            addr,
            _server,
            gateway,
            netmask,
            _host,
            device,
            autoconf,
            eighth,
            ninth,
        ] = field;
        let static_form = matches!(autoconf, b"" | b"off" | b"none");
        if !static_form || device.is_empty() || device.len() >= IFNAMSIZ {
            return None;
        }
        let mtu_given = !eighth.is_empty() && eighth.iter().all(u8::is_ascii_digit);
        let mtu = match mtu_given {
            true => Some(number(eighth).filter(|m| (68..=65535).contains(m))?),
            false => None,
        };
        Some(IpConfig {
            device,
            addr: ipv4(addr)?,
            netmask: ipv4(netmask)?,
            gateway: optional(gateway)?,
            dns: [
                if mtu_given { None } else { server(eighth)? },
                server(ninth)?,
            ],
            mtu,
        })
    }
}

/// A name server's field: empty, or an address kept as text.
fn server(text: &[u8]) -> Option<Option<&[u8]>> {
    optional(text).map(|addr| addr.map(|_| text))
}

/// An empty field as `Some(None)`, an address as `Some(Some(..))`, and
/// anything else as `None`.
#[inline(never)] // called four times by `parse`: one copy is smaller
fn optional(text: &[u8]) -> Option<Option<Ipv4>> {
    match text {
        b"" => Some(None),
        _ => ipv4(text).map(Some),
    }
}

/// `/etc/resolv.conf` naming the servers, into `out`; the bytes written
/// (what does not fit is cut).
pub fn resolv_conf(dns: &[Option<&[u8]>; 2], out: &mut [u8]) -> usize {
    let mut at = 0;
    for server in dns.iter().flatten() {
        for part in [&b"nameserver "[..], server, b"\n"] {
            let end = (at + part.len()).min(out.len());
            out[at..end].copy_from_slice(&part[..end - at]);
            at = end;
        }
    }
    at
}

/// The kernel's interface name limit, with its NUL (include/uapi/linux/if.h).
pub const IFNAMSIZ: usize = 16;
/// `struct ifreq`'s size on x86-64: the name and a 24-byte union.
pub const IFREQ_SIZE: usize = 40;
/// `struct rtentry`'s size on x86-64 (include/uapi/linux/route.h).
pub const RTENTRY_SIZE: usize = 120;

/// netdevice(7) and route ioctls (include/uapi/linux/sockios.h).
pub const SIOCADDRT: usize = 0x890B;
/// Reads an interface's flags.
pub const SIOCGIFFLAGS: usize = 0x8913;
/// Sets them.
pub const SIOCSIFFLAGS: usize = 0x8914;
/// Sets its address.
pub const SIOCSIFADDR: usize = 0x8916;
/// Sets its netmask.
pub const SIOCSIFNETMASK: usize = 0x891C;
/// Sets its MTU.
pub const SIOCSIFMTU: usize = 0x8922;
/// IFF_UP in `ifr_flags`.
pub const IFF_UP: u16 = 0x1;

const AF_INET: u16 = 2;
/// rtentry's flags: the route is up and goes through a gateway.
const RTF_UP_GATEWAY: u16 = 0x1 | 0x2;

/// An `ifreq` naming `device`, its union empty.
pub fn ifreq(device: &[u8]) -> [u8; IFREQ_SIZE] {
    let mut request = [0u8; IFREQ_SIZE];
    let len = device.len().min(IFNAMSIZ - 1);
    request[..len].copy_from_slice(&device[..len]);
    request
}

/// An `ifreq` carrying an IPv4 `struct sockaddr_in` (SIOCSIFADDR,
/// SIOCSIFNETMASK).
pub fn ifreq_addr(device: &[u8], addr: Ipv4) -> [u8; IFREQ_SIZE] {
    let mut request = ifreq(device);
    sockaddr_in(&mut request[IFNAMSIZ..IFNAMSIZ + 16], addr);
    request
}

/// An `ifreq` carrying an MTU (SIOCSIFMTU: an int).
pub fn ifreq_mtu(device: &[u8], mtu: u32) -> [u8; IFREQ_SIZE] {
    let mut request = ifreq(device);
    request[IFNAMSIZ..IFNAMSIZ + 4].copy_from_slice(&mtu.to_ne_bytes());
    request
}

/// Sets IFF_UP in an `ifreq` read back by SIOCGIFFLAGS.
pub fn set_up(request: &mut [u8; IFREQ_SIZE]) {
    let flags = u16::from_ne_bytes([request[IFNAMSIZ], request[IFNAMSIZ + 1]]) | IFF_UP;
    request[IFNAMSIZ..IFNAMSIZ + 2].copy_from_slice(&flags.to_ne_bytes());
}

/// A `struct rtentry` for the default route through `gateway`
/// (destination and mask 0.0.0.0; the kernel finds the device).
pub fn default_route(gateway: Ipv4) -> [u8; RTENTRY_SIZE] {
    let mut route = [0u8; RTENTRY_SIZE];
    // rt_dst at 8 and rt_genmask at 40: 0.0.0.0, family set.
    sockaddr_in(&mut route[8..24], [0; 4]);
    sockaddr_in(&mut route[24..40], gateway);
    sockaddr_in(&mut route[40..56], [0; 4]);
    route[56..58].copy_from_slice(&RTF_UP_GATEWAY.to_ne_bytes());
    route
}

/// `struct sockaddr_in`: family, port 0, the address.
fn sockaddr_in(out: &mut [u8], addr: Ipv4) {
    out[..2].copy_from_slice(&AF_INET.to_ne_bytes());
    out[4..8].copy_from_slice(&addr);
}

/// A dotted quad.
#[inline(never)] // called six times by `parse`: one copy is smaller
fn ipv4(text: &[u8]) -> Option<Ipv4> {
    let mut addr = [0u8; 4];
    let mut parts = text.split(|&b| b == b'.');
    for byte in &mut addr {
        *byte = u8::try_from(number(parts.next()?)?).ok()?;
    }
    parts.next().is_none().then_some(addr)
}

/// A decimal number of up to five digits.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_and_dracut_forms() {
        let ip = IpConfig::parse(b"10.0.2.15::10.0.2.2:255.255.255.0::eth0:off:10.0.2.3:8.8.8.8")
            .unwrap();
        assert_eq!(
            ip,
            IpConfig {
                device: b"eth0",
                addr: [10, 0, 2, 15],
                netmask: [255, 255, 255, 0],
                gateway: Some([10, 0, 2, 2]),
                dns: [Some(&b"10.0.2.3"[..]), Some(&b"8.8.8.8"[..])],
                mtu: None,
            }
        );
        let dracut =
            IpConfig::parse(b"192.168.1.5::192.168.1.1:255.255.255.0:h:ens3:none:9000").unwrap();
        assert_eq!(dracut.mtu, Some(9000));
        assert_eq!(dracut.dns, [None, None]);
        // No gateway: no default route; no autoconf field: static.
        let bare = IpConfig::parse(b"10.1.2.3:::255.0.0.0::eth1").unwrap();
        assert_eq!(bare.gateway, None);
        assert_eq!(bare.netmask, [255, 0, 0, 0]);
    }

    #[test]
    fn what_is_refused() {
        for junk in [
            &b"dhcp"[..],
            b"10.0.0.1:::255.0.0.0::eth0:dhcp",
            b"10.0.0.1:::255.0.0.0:::off",
            b"10.0.0.300:::255.0.0.0::eth0:off",
            b"10.0.0.1::10.0.0:255.0.0.0::eth0:off",
            b"10.0.0.1:::::eth0:off",
            b"10.0.0.1:::255.0.0.0::eth0:off:70000",
            b"10.0.0.1:::255.0.0.0::eth0:off:10.0.0.x",
            b"10.0.0.1:::255.0.0.0::a-name-far-too-long:off",
        ] {
            assert_eq!(IpConfig::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn requests_have_the_kernels_layout() {
        let addr = ifreq_addr(b"eth0", [10, 0, 2, 15]);
        assert_eq!(&addr[..5], b"eth0\0");
        assert_eq!(&addr[16..24], &[2, 0, 0, 0, 10, 0, 2, 15]);
        let mtu = ifreq_mtu(b"eth0", 1500);
        assert_eq!(&mtu[16..20], &1500u32.to_ne_bytes());
        let mut flags = ifreq(b"lo");
        flags[16] = 0x40; // IFF_RUNNING, as read back
        set_up(&mut flags);
        assert_eq!(flags[16], 0x41);
        let route = default_route([10, 0, 2, 2]);
        assert_eq!(&route[8..10], &[2, 0]);
        assert_eq!(&route[24..32], &[2, 0, 0, 0, 10, 0, 2, 2]);
        assert_eq!(&route[40..42], &[2, 0]);
        assert_eq!(&route[56..58], &[3, 0]);
    }

    #[test]
    fn resolv_conf_names_the_servers() {
        let mut out = [0u8; 128];
        let n = resolv_conf(&[Some(b"10.0.2.3"), Some(b"192.168.100.1")], &mut out);
        assert_eq!(
            &out[..n],
            b"nameserver 10.0.2.3\nnameserver 192.168.100.1\n"
        );
        assert_eq!(resolv_conf(&[None, None], &mut out), 0);
    }
}
