//! `carillon-kernelpath`: the kernel fast path of the RTP relay, the role of
//! rtpengine's kernel module.
//!
//! Owns the eBPF TC classifier (`bpf/relay.bpf.c`, compiled to the committed
//! `bpf/relay.bpf.o` by `bpf/build.sh` so a build needs only Rust), its
//! attachment to network interfaces, and the byte layout of its flow table.
//! It does not decide which flows are forwarded in the kernel: the media
//! engine (`carillon-media`) does, and the media edge (`carillon-rtpnet`)
//! carries its decisions into the table through [`FlowTable`].
//!
//! ```text
//!  datagram ─► TC ingress: flows[remote, local] ─ miss / other PT / other SSRC ─► stack ─► userspace relay
//!                        │ hit
//!                        └─► G.711 map (µ-law ↔ A-law flows); rewrite PT, seq, ts, SSRC; readdress from the bridged leg's
//!                            port to its peer; count ─► local: up the stack (via lo)
//!                                                       remote: bpf_redirect_neigh
//! ```
//!
//! A flow is a 4-tuple (remote address and port, local address and port)
//! of one direction of one bridged call. IPv4 only: IPv6 media stays in
//! userspace. The program is attached through TCX links (Linux 6.6+; older
//! kernels get a clsact qdisc and a netlink filter): several programs can
//! share an interface, and a link goes away with the process that holds it,
//! so a crashed switch leaves no forwarding behind.

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use aya::programs::{tc, SchedClassifier, TcAttachType};
use aya::Ebpf;
use carillon_codec::g711::{ALAW_TO_ULAW, ULAW_TO_ALAW};
use carillon_media::{G711Map, OffloadFlow, OffloadProgress};
use std::net::{IpAddr, SocketAddrV4};

/// The compiled TC program.
const PROGRAM_OBJECT: &[u8] = include_bytes!("../bpf/relay.bpf.o");
const PROGRAM_NAME: &str = "carillon_rtp_relay";
const FLOW_MAP: &str = "flows";
const G711_MAP: &str = "g711";
/// Size of `struct flow_key` in `relay.bpf.c`.
pub const KEY_LEN: usize = 12;
/// Size of `struct flow_rule` in `relay.bpf.c`.
pub const RULE_LEN: usize = 56;

/// Errors loading the program or using its table.
#[derive(Debug, thiserror::Error)]
pub enum KernelPathError {
    #[error("loading the kernel RTP program: {0}")]
    Load(String),
    #[error("attaching the kernel RTP program to interface {interface}: {reason}")]
    Attach { interface: String, reason: String },
    #[error("no network interface carries address {0}")]
    NoInterface(IpAddr),
    #[error("listing network interfaces: {0}")]
    Interfaces(String),
    #[error("flow table: {0}")]
    Map(String),
}

/// One direction of a relayed call, as the datagram arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Where the datagram comes from (the latched peer of the receiving leg).
    pub remote: SocketAddrV4,
    /// The address and RTP port of the receiving leg.
    pub local: SocketAddrV4,
}

impl FlowKey {
    /// The key of the flow the engine asked for.
    pub fn of(flow: &OffloadFlow) -> Self {
        FlowKey {
            remote: flow.remote,
            local: flow.local,
        }
    }

    /// `struct flow_key`: addresses and ports in network byte order.
    pub fn encode(&self) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        out[0..4].copy_from_slice(&self.remote.ip().octets());
        out[4..8].copy_from_slice(&self.local.ip().octets());
        out[8..10].copy_from_slice(&self.remote.port().to_be_bytes());
        out[10..12].copy_from_slice(&self.local.port().to_be_bytes());
        out
    }
}

/// `struct flow_rule` for `flow`, counters zeroed: the same rewriting the
/// userspace relay does for a same-codec bridged leg. `out_ifindex` is the
/// interface a remote destination is reached through (0: the one the flow
/// arrives on; see [`egress_interface`]).
pub fn encode_rule(flow: &OffloadFlow, out_ifindex: u32) -> [u8; RULE_LEN] {
    let mut out = [0u8; RULE_LEN];
    out[0..4].copy_from_slice(&flow.destination.ip().octets());
    out[4..6].copy_from_slice(&flow.source_port.to_be_bytes());
    out[6..8].copy_from_slice(&flow.destination.port().to_be_bytes());
    out[8..12].copy_from_slice(&flow.ssrc_in.to_be_bytes());
    out[12..16].copy_from_slice(&flow.ssrc_out.to_be_bytes());
    out[16..18].copy_from_slice(&flow.seq_delta.to_ne_bytes());
    out[18] = flow.pt_in & 0x7f;
    out[19] = flow.pt_out & 0x7f;
    out[20..24].copy_from_slice(&flow.ts_delta.to_ne_bytes());
    out[46] = u8::from(flow.local_destination);
    out[47] = match flow.transcode {
        G711Map::None => 0,
        G711Map::UlawToAlaw => 1,
        G711Map::AlawToUlaw => 2,
    };
    out[48..52].copy_from_slice(&out_ifindex.to_ne_bytes());
    out
}

/// The kernel's counters in an encoded `struct flow_rule`.
pub fn decode_counters(rule: &[u8; RULE_LEN]) -> OffloadProgress {
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rule[at..at + 8]);
        u64::from_ne_bytes(b)
    };
    let mut ts = [0u8; 4];
    ts.copy_from_slice(&rule[40..44]);
    let mut seq = [0u8; 2];
    seq.copy_from_slice(&rule[44..46]);
    OffloadProgress {
        packets: u64_at(24),
        bytes: u64_at(32),
        last_seq: u16::from_ne_bytes(seq),
        last_timestamp: u32::from_ne_bytes(ts),
    }
}

/// The loaded program, attached to some interfaces. Dropping it detaches
/// the program.
pub struct KernelRelay {
    _ebpf: Ebpf,
    map_id: u32,
    interfaces: Vec<String>,
}

impl std::fmt::Debug for KernelRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelRelay")
            .field("map_id", &self.map_id)
            .field("interfaces", &self.interfaces)
            .finish()
    }
}

impl KernelRelay {
    /// Loads the program and attaches it at ingress of each named
    /// interface. Needs CAP_BPF and CAP_NET_ADMIN (root).
    pub fn attach(interfaces: &[String]) -> Result<Self, KernelPathError> {
        let mut ebpf =
            Ebpf::load(PROGRAM_OBJECT).map_err(|e| KernelPathError::Load(e.to_string()))?;
        let program: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| {
                KernelPathError::Load(format!("the object has no program {PROGRAM_NAME}"))
            })?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| KernelPathError::Load(e.to_string()))?;
        program
            .load()
            .map_err(|e| KernelPathError::Load(e.to_string()))?;
        for interface in interfaces {
            // TCX (Linux 6.6+) needs no qdisc; the netlink fallback of
            // older kernels needs a clsact qdisc, added only then.
            let attached = program
                .attach(interface, TcAttachType::Ingress)
                .or_else(|_| {
                    let _ = tc::qdisc_add_clsact(interface);
                    program.attach(interface, TcAttachType::Ingress)
                });
            attached.map_err(|e| KernelPathError::Attach {
                interface: interface.clone(),
                reason: e.to_string(),
            })?;
        }
        // The G.711 byte maps the program applies (index = transcode - 1).
        let tables = ebpf
            .map_mut(G711_MAP)
            .ok_or_else(|| KernelPathError::Load(format!("the object has no map {G711_MAP}")))?;
        let mut tables: aya::maps::Array<&mut MapData, [u8; 256]> =
            aya::maps::Array::try_from(tables).map_err(|e| KernelPathError::Map(e.to_string()))?;
        for (index, table) in [&ULAW_TO_ALAW, &ALAW_TO_ULAW].into_iter().enumerate() {
            tables
                .set(index as u32, *table, 0)
                .map_err(|e| KernelPathError::Map(e.to_string()))?;
        }
        let map = ebpf
            .map(FLOW_MAP)
            .ok_or_else(|| KernelPathError::Load(format!("the object has no map {FLOW_MAP}")))?;
        let map_id = match map {
            Map::HashMap(data) => data
                .info()
                .map_err(|e| KernelPathError::Map(e.to_string()))?
                .id(),
            _ => {
                return Err(KernelPathError::Load(format!(
                    "{FLOW_MAP} is not a hash map"
                )))
            }
        };
        Ok(KernelRelay {
            _ebpf: ebpf,
            map_id,
            interfaces: interfaces.to_vec(),
        })
    }

    /// The interfaces the program is attached to.
    pub fn interfaces(&self) -> &[String] {
        &self.interfaces
    }

    /// A handle on the flow table for one thread.
    pub fn flow_table(&self) -> Result<FlowTable, KernelPathError> {
        FlowTable::open(self.map_id)
    }

    /// The kernel id of the flow table, for [`FlowTable::open`] on another thread.
    pub fn map_id(&self) -> u32 {
        self.map_id
    }
}

/// One thread's handle on the flow table (its own file descriptor).
pub struct FlowTable {
    map: BpfHashMap<MapData, [u8; KEY_LEN], [u8; RULE_LEN]>,
}

impl std::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable").finish_non_exhaustive()
    }
}

impl FlowTable {
    /// Opens the table with kernel id `map_id`.
    pub fn open(map_id: u32) -> Result<Self, KernelPathError> {
        let data = MapData::from_id(map_id).map_err(|e| KernelPathError::Map(e.to_string()))?;
        let map = BpfHashMap::try_from(Map::HashMap(data))
            .map_err(|e| KernelPathError::Map(e.to_string()))?;
        Ok(FlowTable { map })
    }

    /// Installs (or replaces, zeroing its counters) a flow; see
    /// [`encode_rule`] for `out_ifindex`.
    pub fn insert(&mut self, flow: &OffloadFlow, out_ifindex: u32) -> Result<(), KernelPathError> {
        self.map
            .insert(
                FlowKey::of(flow).encode(),
                encode_rule(flow, out_ifindex),
                0,
            )
            .map_err(|e| KernelPathError::Map(e.to_string()))
    }

    /// Removes a flow; its counters at removal, if it was installed.
    pub fn remove(&mut self, key: &FlowKey) -> Result<Option<OffloadProgress>, KernelPathError> {
        let counters = self.counters(key)?;
        if counters.is_some() {
            self.map
                .remove(&key.encode())
                .map_err(|e| KernelPathError::Map(e.to_string()))?;
        }
        Ok(counters)
    }

    /// The counters of an installed flow.
    pub fn counters(&self, key: &FlowKey) -> Result<Option<OffloadProgress>, KernelPathError> {
        match self.map.get(&key.encode(), 0) {
            Ok(rule) => Ok(Some(decode_counters(&rule))),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(KernelPathError::Map(e.to_string())),
        }
    }
}

/// The index of the interface the kernel routes `destination` through (a
/// connected UDP socket's source address, and the interface carrying it).
/// `None` when it cannot tell, e.g. no route.
pub fn egress_interface(destination: SocketAddrV4) -> Option<u32> {
    let probe = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    probe.connect(destination).ok()?;
    let source = match probe.local_addr().ok()? {
        std::net::SocketAddr::V4(a) => *a.ip(),
        std::net::SocketAddr::V6(_) => return None,
    };
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for ifa in addrs {
        let carries = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in().map(|s| s.ip()))
            .is_some_and(|a| a == source);
        if carries {
            return nix::net::if_::if_nametoindex(ifa.interface_name.as_str()).ok();
        }
    }
    None
}

/// The interfaces media for `ip` arrives on: those carrying the address,
/// or every interface that is up when `ip` is the wildcard.
pub fn interfaces_for(ip: IpAddr) -> Result<Vec<String>, KernelPathError> {
    use nix::net::if_::InterfaceFlags;
    let mut names: Vec<String> = Vec::new();
    let addrs =
        nix::ifaddrs::getifaddrs().map_err(|e| KernelPathError::Interfaces(e.to_string()))?;
    for ifa in addrs {
        if !ifa.flags.contains(InterfaceFlags::IFF_UP) {
            continue;
        }
        let carries = ip.is_unspecified()
            || ifa
                .address
                .as_ref()
                .and_then(|a| a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())))
                .is_some_and(|a| a == ip);
        if carries && !names.contains(&ifa.interface_name) {
            names.push(ifa.interface_name);
        }
    }
    if names.is_empty() {
        return Err(KernelPathError::NoInterface(ip));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn key_is_network_order() {
        let key = FlowKey {
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 0x1234),
            local: SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 10000),
        };
        assert_eq!(
            key.encode(),
            [10, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34, 0x27, 0x10]
        );
    }

    #[test]
    fn rule_layout_matches_the_c_struct() {
        let flow = OffloadFlow {
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 5004),
            local: SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 10000),
            destination: SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 2), 4000),
            source_port: 10002,
            ssrc_in: 0x0102_0304,
            ssrc_out: 0xa0b0_c0d0,
            seq_delta: 0x0506,
            ts_delta: 0x0708_090a,
            pt_in: 0,
            pt_out: 0x88, // only 7 bits are a payload type
            local_destination: true,
            transcode: G711Map::AlawToUlaw,
        };
        let b = encode_rule(&flow, 7);
        assert_eq!(&b[0..4], &[192, 168, 1, 2]);
        assert_eq!(&b[4..6], &10002u16.to_be_bytes());
        assert_eq!(&b[6..8], &4000u16.to_be_bytes());
        assert_eq!(&b[8..12], &[1, 2, 3, 4]);
        assert_eq!(&b[12..16], &[0xa0, 0xb0, 0xc0, 0xd0]);
        assert_eq!(&b[16..18], &0x0506u16.to_ne_bytes());
        assert_eq!((b[18], b[19]), (0, 8));
        assert_eq!(&b[20..24], &0x0708_090au32.to_ne_bytes());
        assert_eq!((b[46], b[47]), (1, 2));
        assert_eq!(&b[48..52], &7u32.to_ne_bytes());
        assert_eq!(decode_counters(&b), OffloadProgress::default());
    }

    #[test]
    fn counters_decode() {
        let mut b = [0u8; RULE_LEN];
        b[24..32].copy_from_slice(&7u64.to_ne_bytes());
        b[32..40].copy_from_slice(&1120u64.to_ne_bytes());
        b[40..44].copy_from_slice(&160_000u32.to_ne_bytes());
        b[44..46].copy_from_slice(&65535u16.to_ne_bytes());
        assert_eq!(
            decode_counters(&b),
            OffloadProgress {
                packets: 7,
                bytes: 1120,
                last_seq: 65535,
                last_timestamp: 160_000
            }
        );
    }

    #[test]
    fn loopback_destinations_route_through_lo() {
        let lo = nix::net::if_::if_nametoindex("lo").expect("lo");
        assert_eq!(
            egress_interface(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9)),
            Some(lo)
        );
    }

    #[test]
    fn loopback_is_found_by_address() {
        let names = interfaces_for(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("lo");
        assert_eq!(names, vec!["lo".to_string()]);
        assert!(matches!(
            interfaces_for(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            Err(KernelPathError::NoInterface(_))
        ));
    }
}
