/* Conformance program: a weighted action selector with watch ports (load balancing and
 * fast failover). IPv4/UDP frames are spread over the members of a group by a crc16
 * hash of their source address and source port; a member sends the frame out of its
 * port and stamps its own source MAC address, so the receiver knows which member chose
 * it. The selector admits groups whose weights add up to at most 8. Frames for UDP port 9
 * take a member of a plain action profile instead (no selector: no groups, no weights,
 * no watch ports). */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header ipv4_t {
    bit<4>  version;
    bit<4>  ihl;
    bit<8>  diffserv;
    bit<16> totalLen;
    bit<16> identification;
    bit<3>  flags;
    bit<13> fragOffset;
    bit<8>  ttl;
    bit<8>  protocol;
    bit<16> hdrChecksum;
    bit<32> srcAddr;
    bit<32> dstAddr;
}

header udp_t {
    bit<16> srcPort;
    bit<16> dstPort;
    bit<16> length;
    bit<16> checksum;
}

struct headers_t {
    ethernet_t ethernet;
    ipv4_t     ipv4;
    udp_t      udp;
}

struct metadata_t { }

parser SelParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            0x0800: parse_ipv4;
            default: accept;
        }
    }
    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        transition select(hdr.ipv4.protocol) {
            17: parse_udp;
            default: accept;
        }
    }
    state parse_udp {
        pkt.extract(hdr.udp);
        transition accept;
    }
}

control SelVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control SelIngress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    /* The group's choice is hash(srcAddr, srcPort) modulo the number of live member
     * copies: one flow stays on one member while the group does not change. */
    @max_group_size(8)
    action_selector(HashAlgorithm.crc16, 64, 16) lb_sel;
    action_profile(8) pin_prof;

    action drop() { mark_to_drop(std); }
    action forward(bit<9> port, bit<48> smac) {
        std.egress_spec = port;
        hdr.ethernet.srcAddr = smac;
    }

    table lb {
        key = {
            hdr.ipv4.dstAddr: exact;
            hdr.ipv4.srcAddr: selector;
            hdr.udp.srcPort:  selector;
        }
        actions = { forward; drop; }
        implementation = lb_sel;
        size = 64;
    }

    table pinned {
        key = { hdr.ipv4.dstAddr: exact; }
        actions = { forward; drop; }
        implementation = pin_prof;
        size = 8;
    }

    apply {
        if (hdr.udp.isValid() && hdr.udp.dstPort == 9) {
            pinned.apply();
        } else if (hdr.udp.isValid()) {
            lb.apply();
        } else {
            drop();
        }
    }
}

control SelEgress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    apply { }
}

control SelComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control SelDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.ipv4);
        pkt.emit(hdr.udp);
    }
}

V1Switch(SelParser(), SelVerifyChecksum(), SelIngress(), SelEgress(),
         SelComputeChecksum(), SelDeparser()) main;
