#!/usr/bin/env python3
"""Writes a pcap of G.711 µ-law RTP (PT 0, 160-byte payloads, 20 ms apart)
carrying a sine tone, for SIPp's play_pcap_audio. Usage: make_pcap.py OUT SECONDS HZ"""
import math, struct, sys

def ulaw(sample):
    BIAS, CLIP = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0: sample = -sample
    sample = min(sample, CLIP) + BIAS
    exp = 7
    mask = 0x4000
    while exp > 0 and not (sample & mask):
        exp -= 1; mask >>= 1
    mant = (sample >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant)) & 0xFF

def main():
    out, secs, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    n = int(secs * 50)
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            payload = bytes(ulaw(int(8000 * math.sin(2 * math.pi * hz * (i * 160 + k) / 8000))) for k in range(160))
            rtp = struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, (i * 160) & 0xFFFFFFFF, 0x1234) + payload
            udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([127,0,0,1]), bytes([127,0,0,1])) + udp
            eth = b"\x00" * 12 + b"\x08\x00" + ip
            ts = i * 0.02
            f.write(struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(eth), len(eth)))
            f.write(eth)

main()
