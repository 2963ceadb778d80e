/*
 * digests: a small v1model program whose ingress sends digests to the controller. It is
 * a test fixture for P4Runtime DigestEntry, DigestList and DigestListAck.
 *
 *  - `mac_learn_t`: a packet reports its source MAC address and ingress port, as a
 *    learning switch would for unknown sources
 *  - `ether_type_t`: packets of the experimental EtherType 0x88b5 report that instead,
 *    so the program has two digests (a wildcard read of DigestEntry returns both); in
 *    v1model a packet carries at most one digest, the last one generated
 *
 * Packets are forwarded to port 1. The committed digests.json and .p4info.txtpb come from:
 *   p4c --target bmv2 --arch v1model \
 *       --p4runtime-files digests.p4info.txtpb -o . digests.p4
 */
#include <core.p4>
#include <v1model.p4>

const bit<16> ETHERTYPE_EXPERIMENTAL = 0x88b5;

header ethernet_t {
    bit<48> dst_addr;
    bit<48> src_addr;
    bit<16> ether_type;
}

/* What a learning switch needs to install an L2 entry for the sender. */
struct mac_learn_t {
    bit<48> src_addr;
    bit<9>  ingress_port;
}

struct ether_type_t {
    bit<16> ether_type;
}

struct headers_t {
    ethernet_t ethernet;
}

struct metadata_t { }

parser DigestsParser(packet_in packet, out headers_t hdr, inout metadata_t meta,
                     inout standard_metadata_t standard_metadata) {
    state start {
        packet.extract(hdr.ethernet);
        transition accept;
    }
}

control DigestsVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control DigestsIngress(inout headers_t hdr, inout metadata_t meta,
                       inout standard_metadata_t standard_metadata) {
    apply {
        if (hdr.ethernet.ether_type == ETHERTYPE_EXPERIMENTAL) {
            digest<ether_type_t>(1, { hdr.ethernet.ether_type });
        } else {
            digest<mac_learn_t>(1, { hdr.ethernet.src_addr, standard_metadata.ingress_port });
        }
        standard_metadata.egress_spec = 1;
    }
}

control DigestsEgress(inout headers_t hdr, inout metadata_t meta,
                      inout standard_metadata_t standard_metadata) {
    apply { }
}

control DigestsComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control DigestsDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.ethernet);
    }
}

V1Switch(DigestsParser(), DigestsVerifyChecksum(), DigestsIngress(), DigestsEgress(),
         DigestsComputeChecksum(), DigestsDeparser()) main;
