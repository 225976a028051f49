// SPDX-License-Identifier: MIT OR Apache-2.0 OR GPL-2.0
//
// carillon-xdp: the kernel fast path of the RTP relay.
//
// One XDP program, attached to the interfaces media arrives on. For a UDP
// datagram whose 4-tuple (source address and port, local address and port)
// is a key of `flows`, and whose RTP header carries the expected version,
// payload type and SSRC, it does what the userspace relay would have done:
// rewrite payload type, sequence number, timestamp and SSRC, readdress the
// datagram from the bridged leg's port to that leg's destination, and
// count it. Everything else (unknown flows, RTCP, telephone-events, a new
// SSRC, IP options, fragments, IPv6) passes to the stack unchanged, so the
// userspace relay keeps handling it; it is also what the switch sees first
// before it installs a flow.
//
// Delivery: a local destination (loopback, another process on this host;
// userspace marks the flow FLOW_LOCAL) is delivered by the stack after
// XDP_PASS. A remote one is sent out of the interface the FIB names, with
// the neighbour's MAC, by bpf_redirect; if the FIB has no answer (no
// neighbour entry yet, or forwarding disabled on the interface, which
// bpf_fib_lookup requires), the datagram passes to userspace unchanged,
// whose send resolves the neighbour.
//
// Map layouts are fixed little structs in network byte order where they
// hold packet fields; carillon-xdp/src/lib.rs encodes the same layout.
// Rebuild the object with crates/carillon-xdp/bpf/build.sh.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>
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
	__u8 pad;
};

#define FLOW_LOCAL 1

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

SEC("xdp")
int carillon_rtp_relay(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_PASS; /* a fragment, or more to come */

	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;

	__u8 *rtp = (void *)(udp + 1);
	if ((void *)(rtp + 12) > data_end)
		return XDP_PASS;

	struct flow_key key = {
		.saddr = ip->saddr,
		.daddr = ip->daddr,
		.sport = udp->source,
		.dport = udp->dest,
	};
	struct flow_rule *rule = bpf_map_lookup_elem(&flows, &key);
	if (!rule)
		return XDP_PASS;

	if ((rtp[0] & 0xc0) != 0x80)
		return XDP_PASS; /* not RTP version 2 */
	if ((rtp[1] & 0x7f) != rule->pt_in)
		return XDP_PASS; /* telephone-event, CN, RTCP: userspace */
	__u32 *ssrc = (__u32 *)(rtp + 8);
	if (*ssrc != rule->ssrc_in)
		return XDP_PASS; /* a new source: userspace re-maps it */

	__u16 udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(struct udphdr) + 12)
		return XDP_PASS;

	/* Where does the rewritten datagram go? A local destination is
	 * delivered by the stack; a remote one needs the FIB (which answers only
	 * where forwarding is enabled on the interface) and a neighbour entry. */
	int local = rule->flags & FLOW_LOCAL;
	struct bpf_fib_lookup fib = {};
	if (!local) {
		fib.family = AF_INET;
		fib.tos = ip->tos;
		fib.l4_protocol = IPPROTO_UDP;
		fib.tot_len = bpf_ntohs(ip->tot_len);
		fib.ipv4_src = ip->daddr;
		fib.ipv4_dst = rule->out_daddr;
		fib.ifindex = ctx->ingress_ifindex;
		if (bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT) !=
		    BPF_FIB_LKUP_RET_SUCCESS)
			return XDP_PASS; /* no route, neighbour or forwarding: userspace sends it */
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

	if (local)
		return XDP_PASS;
	if (ip->ttl <= 1)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
