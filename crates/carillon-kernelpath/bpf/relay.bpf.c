// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0
//
// carillon-kernelpath: the kernel fast path of the RTP relay.
//
// One TC classifier (attached at ingress of the interfaces media arrives
// on, through TCX links where the kernel has them). For a UDP datagram whose
// 4-tuple (source address and port, local address and port) is a key of
// `flows`, and whose RTP header carries the expected version, payload type
// and SSRC, it does what the userspace relay would have done: rewrite
// payload type, sequence number, timestamp and SSRC, readdress the datagram
// from the bridged leg's port to that leg's destination, and count it.
// A flow between a µ-law and an A-law leg also gets its payload mapped
// through the G.711 tables. Everything else (unknown flows, RTCP,
// telephone-events, a new SSRC, IP options, fragments, IPv6) goes on unchanged (TC_ACT_UNSPEC: the next
// program, then the stack), so the userspace relay keeps handling it; it
// is also what the switch sees first, before it installs a flow.
//
// Delivery: a local destination (loopback, another process on this host;
// userspace marks the flow FLOW_LOCAL) continues up the stack, through the
// loopback device when it arrived elsewhere (a local source address is
// only accepted there). A remote one leaves by bpf_redirect_neigh out of
// the interface userspace found the route to it on (the one it arrived on
// when unset), which routes it like a locally sent datagram and fills in
// the next hop's MAC from the neighbour table: no IP forwarding needs to
// be enabled.
//
// Map layouts are fixed little structs in network byte order where they
// hold packet fields; carillon-kernelpath/src/lib.rs encodes the same layout.
// Rebuild the object with crates/carillon-kernelpath/bpf/build.sh.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif

struct flow_key {
	__u32 saddr;   /* remote address, network order */
	__u32 daddr;   /* local address the datagram was sent to */
	__u16 sport;   /* remote port, network order */
	__u16 dport;   /* local RTP port of the receiving leg */
};

struct flow_rule {
	__u32 out_daddr;  /* destination of the bridged leg, network order */
	__u16 out_sport;  /* local RTP port of the bridged leg, network order */
	__u16 out_dport;  /* destination port of the bridged leg, network order */
	__u32 ssrc_in;    /* expected SSRC, network order */
	__u32 ssrc_out;   /* SSRC towards the bridged leg, network order */
	__u16 seq_delta;  /* added to the sequence number (host order) */
	__u8 pt_in;       /* expected payload type */
	__u8 pt_out;      /* payload type towards the bridged leg */
	__u32 ts_delta;   /* added to the timestamp (host order) */
	__u64 packets;    /* forwarded by this program */
	__u64 bytes;      /* UDP payload bytes forwarded */
	__u32 last_ts;    /* timestamp of the last packet sent (host order) */
	__u16 last_seq;   /* sequence number of the last packet sent (host order) */
	__u8 flags;       /* FLOW_LOCAL: the destination is an address of this host */
	__u8 transcode;   /* 0: none; 1 + index into g711: the payload's byte map */
	__u32 out_ifindex; /* interface towards a remote destination (0: the ingress one) */
	__u32 pad2;
};

#define FLOW_LOCAL 1

/* G.711 byte maps (0: µ-law to A-law, 1: A-law to µ-law), filled by
 * userspace from carillon-codec's tables (ITU-T G.711 Tables 3 and 4). */
struct g711_map {
	__u8 to[256];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct g711_map);
} g711 SEC(".maps");

/* Longest RTP payload transcoded in the kernel (a 1500-byte MTU). */
#define MAX_PAYLOAD 1460

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct flow_rule);
} flows SEC(".maps");

static __always_inline __u16 ipv4_checksum(struct iphdr *ip)
{
	__u32 sum = 0;
	__u16 *words = (__u16 *)ip;
	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += words[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Ethernet + IPv4 without options + UDP + the fixed RTP header. */
#define HEADERS_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + 12)
#define LOOPBACK_IFINDEX 1

SEC("classifier")
int carillon_rtp_relay(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	if ((void *)(long)skb->data + HEADERS_LEN > (void *)(long)skb->data_end &&
	    bpf_skb_pull_data(skb, HEADERS_LEN) < 0)
		return TC_ACT_UNSPEC;

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return TC_ACT_UNSPEC;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return TC_ACT_UNSPEC;
	if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return TC_ACT_UNSPEC;
	if (ip->frag_off & bpf_htons(0x3fff))
		return TC_ACT_UNSPEC; /* a fragment, or more to come */

	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return TC_ACT_UNSPEC;

	__u8 *rtp = (void *)(udp + 1);
	if ((void *)(rtp + 12) > data_end)
		return TC_ACT_UNSPEC;

	struct flow_key key = {
		.saddr = ip->saddr,
		.daddr = ip->daddr,
		.sport = udp->source,
		.dport = udp->dest,
	};
	struct flow_rule *rule = bpf_map_lookup_elem(&flows, &key);
	if (!rule)
		return TC_ACT_UNSPEC;

	if ((rtp[0] & 0xc0) != 0x80)
		return TC_ACT_UNSPEC; /* not RTP version 2 */
	if ((rtp[1] & 0x7f) != rule->pt_in)
		return TC_ACT_UNSPEC; /* telephone-event, CN, RTCP: userspace */
	__u32 *ssrc = (__u32 *)(rtp + 8);
	if (*ssrc != rule->ssrc_in)
		return TC_ACT_UNSPEC; /* a new source: userspace re-maps it */

	__u16 udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(struct udphdr) + 12)
		return TC_ACT_UNSPEC;

	/* µ-law <-> A-law: a byte map over the payload. Only a plain header
	 * (no CSRC, extension or padding) in a linear buffer; anything else
	 * goes to userspace, which transcodes it. */
	if (rule->transcode) {
		if (rtp[0] != 0x80)
			return TC_ACT_UNSPEC;
		if ((void *)udp + udp_len > data_end || (void *)udp + udp_len < (void *)(rtp + 12))
			return TC_ACT_UNSPEC;
		__u32 index = rule->transcode - 1;
		struct g711_map *map = bpf_map_lookup_elem(&g711, &index);
		if (!map)
			return TC_ACT_UNSPEC;
		__u32 payload_len = udp_len - sizeof(struct udphdr) - 12;
		__u8 *payload = rtp + 12;
		for (__u32 i = 0; i < MAX_PAYLOAD; i++) {
			if (i >= payload_len)
				break;
			__u8 *b = payload + i;
			if ((void *)(b + 1) > data_end)
				return TC_ACT_UNSPEC; /* cannot happen after the check above */
			*b = map->to[*b];
		}
	}

	/* RTP header */
	rtp[1] = (rtp[1] & 0x80) | (rule->pt_out & 0x7f);
	__u16 *seq = (__u16 *)(rtp + 2);
	__u16 seq_out = bpf_ntohs(*seq) + rule->seq_delta;
	*seq = bpf_htons(seq_out);
	__u32 *ts = (__u32 *)(rtp + 4);
	__u32 ts_out = bpf_ntohl(*ts) + rule->ts_delta;
	*ts = bpf_htonl(ts_out);
	*ssrc = rule->ssrc_out;

	/* UDP and IP headers: from the bridged leg's port to its peer */
	__u32 local_addr = ip->daddr;
	ip->saddr = local_addr;
	ip->daddr = rule->out_daddr;
	udp->source = rule->out_sport;
	udp->dest = rule->out_dport;
	udp->check = 0; /* optional over IPv4 (RFC 768) */
	ip->check = ipv4_checksum(ip);

	__sync_fetch_and_add(&rule->packets, 1);
	__sync_fetch_and_add(&rule->bytes, udp_len - sizeof(struct udphdr));
	rule->last_ts = ts_out;
	rule->last_seq = seq_out;

	if (rule->flags & FLOW_LOCAL) {
		if (skb->ifindex == LOOPBACK_IFINDEX)
			return TC_ACT_OK;
		return bpf_redirect(LOOPBACK_IFINDEX, BPF_F_INGRESS);
	}
	__u32 out = rule->out_ifindex ? rule->out_ifindex : skb->ifindex;
	return bpf_redirect_neigh(out, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
