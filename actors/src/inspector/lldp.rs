//! LLDP: listen for one LLDP frame per interface on raw `AF_PACKET` sockets, for a
//! bounded time, and report its TLVs as IPA does: `[type, hexdata]` pairs.
//!
//! Like IPA, the sockets put the interface in promiscuous mode (here through a
//! `PACKET_MR_PROMISC` membership, which the kernel drops with the socket, so the
//! interface is never left promiscuous) and also join the LLDP multicast group.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use super::sysfs::read_trimmed;

/// LLDP's ethertype.
pub const LLDP_ETHERTYPE: u16 = 0x88cc;
/// The nearest-bridge LLDP multicast address.
pub const LLDP_MULTICAST: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];

/// TLVs per interface: `(type, hex value)`.
pub type LldpTlvs = Vec<(u8, String)>;

/// Parses the TLVs of an LLDPDU (7-bit type, 9-bit length, value), IPA's `_parse_tlv`.
pub fn parse_tlvs(mut buf: &[u8]) -> LldpTlvs {
    let mut out = Vec::new();
    while buf.len() >= 2 {
        let header = u16::from_be_bytes([buf[0], buf[1]]);
        let kind = (header >> 9) as u8;
        let len = usize::from(header & 0x01ff);
        let end = (2 + len).min(buf.len());
        let value: String = buf[2..end].iter().map(|b| format!("{b:02x}")).collect();
        out.push((kind, value));
        buf = &buf[end..];
    }
    out
}

/// The TLVs of a whole Ethernet frame (the 14-byte header skipped, as IPA does).
pub fn parse_frame(frame: &[u8]) -> LldpTlvs {
    frame.get(14..).map(parse_tlvs).unwrap_or_default()
}

/// Whether `<sys>/class/net/<name>/flags` has IFF_UP.
pub fn interface_is_up(sys_root: &Path, name: &str) -> bool {
    read_trimmed(&sys_root.join("class/net").join(name).join("flags"))
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & libc::IFF_UP as u32 != 0)
}

/// Opens a non-blocking raw socket receiving LLDP frames on `name`.
pub fn open_lldp_socket(name: &str) -> io::Result<OwnedFd> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: FFI calls with valid pointers to stack values sized as passed; the fd is
    // owned by `OwnedFd` as soon as it exists, so every error path closes it.
    unsafe {
        let ifindex = libc::if_nametoindex(cname.as_ptr());
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = LLDP_ETHERTYPE.to_be();
        let raw = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        );
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        if libc::bind(
            fd.as_raw_fd(),
            std::ptr::addr_of!(addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut mreq: libc::packet_mreq = std::mem::zeroed();
        mreq.mr_ifindex = ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_MULTICAST as u16;
        mreq.mr_alen = 6;
        mreq.mr_address[..6].copy_from_slice(&LLDP_MULTICAST);
        let add = |mreq: &libc::packet_mreq| {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                std::ptr::from_ref(mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as u32,
            )
        };
        if add(&mreq) < 0 {
            tracing::debug!(
                "{name}: cannot join the LLDP multicast group: {}",
                io::Error::last_os_error()
            );
        }
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        mreq.mr_alen = 0;
        if add(&mreq) < 0 {
            tracing::debug!(
                "{name}: cannot enter promiscuous mode: {}",
                io::Error::last_os_error()
            );
        }
        Ok(fd)
    }
}

async fn first_frame(fd: AsyncFd<OwnedFd>) -> io::Result<LldpTlvs> {
    let mut buf = [0u8; 1600];
    loop {
        let mut guard = fd.readable().await?;
        let read = guard.try_io(|inner| {
            // SAFETY: `buf` is valid for `buf.len()` bytes.
            let n = unsafe {
                libc::recv(
                    inner.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match read {
            Ok(Ok(n)) => return Ok(parse_frame(&buf[..n])),
            Ok(Err(err)) => return Err(err),
            Err(_would_block) => continue,
        }
    }
}

/// Listens on every named interface (in the caller's network namespace) until each
/// has received one LLDP frame or `timeout` has passed in total. Interfaces with no
/// frame are absent from the result; `warnings` gets one line per socket error.
pub async fn collect_lldp(
    names: &[String],
    timeout: Duration,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, LldpTlvs> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut listeners = Vec::new();
    for name in names {
        let registered = open_lldp_socket(name).and_then(|fd| {
            // SAFETY: the OwnedFd is moved into the AsyncFd and stays open, unchanged, for
            // the AsyncFd's whole life.
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)
        });
        match registered {
            Ok(fd) => {
                let name = name.clone();
                listeners.push(async move {
                    let got = tokio::time::timeout_at(deadline, first_frame(fd)).await;
                    (name, got)
                });
            }
            Err(err) => warnings.push(format!("LLDP on {name}: {err}")),
        }
    }
    let mut out = BTreeMap::new();
    for (name, got) in futures_util::future::join_all(listeners).await {
        match got {
            Ok(Ok(tlvs)) => {
                out.insert(name, tlvs);
            }
            Ok(Err(err)) => warnings.push(format!("LLDP on {name}: {err}")),
            Err(_elapsed) => tracing::debug!("no LLDP frame on {name} within {timeout:?}"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspector_lldp_tlv_parsing() {
        // Chassis ID (type 1, len 7: subtype 4 + MAC), Port ID (2, len 4), TTL (3, len 2),
        // End (0, len 0).
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(&[0x02, 0x07, 0x04, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        frame.extend_from_slice(&[0x04, 0x04, 0x05, b'p', b'1', b'0']);
        frame.extend_from_slice(&[0x06, 0x02, 0x00, 0x78]);
        frame.extend_from_slice(&[0x00, 0x00]);
        let tlvs = parse_frame(&frame);
        assert_eq!(
            tlvs,
            vec![
                (1, "04525400123456".to_string()),
                (2, "05703130".to_string()),
                (3, "0078".to_string()),
                (0, String::new()),
            ]
        );
        assert!(parse_frame(&[0u8; 10]).is_empty());
        // A truncated TLV keeps what is there.
        assert_eq!(parse_tlvs(&[0x02, 0x07, 0x04]), vec![(1, "04".to_string())]);
    }

    #[test]
    fn inspector_lldp_up_flag() {
        let t = crate::inspector::testutil::Tree::new();
        t.file("sys/class/net/eth0/flags", "0x1003\n");
        t.file("sys/class/net/eth1/flags", "0x1002\n");
        assert!(interface_is_up(&t.path("sys"), "eth0"));
        assert!(!interface_is_up(&t.path("sys"), "eth1"));
        assert!(!interface_is_up(&t.path("sys"), "eth2"));
    }

    #[actix_rt::test]
    async fn inspector_lldp_missing_interface_is_a_warning_and_bounded() {
        let mut warnings = Vec::new();
        let start = std::time::Instant::now();
        let got = collect_lldp(
            &["no-such-if0".to_string()],
            Duration::from_millis(200),
            &mut warnings,
        )
        .await;
        assert!(got.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    /// Two network namespaces joined by a veth pair, deleted on drop (even on panic),
    /// with lldpd sending from the first one.
    struct NetnsPair {
        a: String,
        b: String,
        lldpd: Option<std::process::Child>,
        _dir: tempfile::TempDir,
    }

    fn ip(args: &[&str]) {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("run ip");
        assert!(status.success(), "ip {args:?} failed");
    }

    impl Drop for NetnsPair {
        fn drop(&mut self) {
            if let Some(child) = &mut self.lldpd {
                let _ = child.kill();
                let _ = child.wait();
            }
            for ns in [&self.a, &self.b] {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", ns])
                    .status();
            }
        }
    }

    fn listen_in_netns(ns: &str, iface: &str, timeout: Duration) -> BTreeMap<String, LldpTlvs> {
        let path = format!("/run/netns/{ns}");
        let iface = iface.to_string();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let mut warnings = Vec::new();
            let got = rt.block_on(collect_lldp(&[iface], timeout, &mut warnings));
            assert!(warnings.is_empty(), "{warnings:?}");
            got
        })
        .join()
        .expect("listener thread")
    }

    #[test]
    fn inspector_lldp_real_frames_from_lldpd_in_a_netns_pair() {
        let Ok(lldpd) = which("lldpd") else {
            eprintln!("SKIPPED: lldpd is not installed (apt-get install lldpd)");
            return;
        };
        let id = std::process::id();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut pair = NetnsPair {
            a: format!("ialA{id}"),
            b: format!("ialB{id}"),
            lldpd: None,
            _dir: dir,
        };
        let (va, vb) = (format!("iaa{id}"), format!("iab{id}"));
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "-n", &pair.a, "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns",
            &pair.b,
        ]);
        ip(&["-n", &pair.a, "link", "set", &va, "up"]);
        ip(&["-n", &pair.b, "link", "set", &vb, "up"]);
        std::fs::create_dir_all("/run/lldpd").expect("mkdir /run/lldpd");

        let description = "ironic-agent lldp test";
        let sock = pair._dir.path().join("lldpd.sock");
        let ns_a = pair.a.clone();
        let va2 = va.clone();
        let starter = std::thread::spawn(move || {
            // Give the listener time to open its socket first.
            std::thread::sleep(Duration::from_millis(500));
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns_a])
                .arg(&lldpd)
                .arg("-d")
                .arg("-u")
                .arg(&sock)
                .args(["-S", description, "-I", &va2])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start lldpd")
        });
        let start = std::time::Instant::now();
        let got = listen_in_netns(&pair.b, &vb, Duration::from_secs(25));
        pair.lldpd = Some(starter.join().expect("starter"));
        assert!(
            start.elapsed() < Duration::from_secs(27),
            "bounded by the timeout"
        );

        let tlvs = got
            .get(&vb)
            .unwrap_or_else(|| panic!("no LLDP frame on {vb}: {got:?}"));
        let kinds: Vec<u8> = tlvs.iter().map(|(k, _)| *k).collect();
        assert_eq!(&kinds[..3], [1, 2, 3], "chassis, port, TTL first: {tlvs:?}");
        assert_eq!(kinds.last(), Some(&0), "ends with End of LLDPDU");
        let hex: String = description.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            tlvs.iter().any(|(k, v)| *k == 6 && *v == hex),
            "system description TLV: {tlvs:?}"
        );
        let port_hex: String = va.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            tlvs.iter()
                .any(|(k, v)| (*k == 2 || *k == 4) && v.contains(&port_hex)),
            "the sending port's name appears: {tlvs:?}"
        );
    }

    fn which(tool: &str) -> Result<std::path::PathBuf, ()> {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
            .ok_or(())
    }
}
