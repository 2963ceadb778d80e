/* Conformance program: which parser error BMv2 raises, and in which order it checks.
 * A varbit extract whose length (in bits, from the packet) is not a multiple of 8, or
 * passes the header's maximum, or runs past the packet; an advance by a run-time amount
 * that is not a multiple of 8. Ingress reports parser_error in a result header
 * emitted after Ethernet, followed by the pre header and the varbit header if valid. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header pre_t {
    bit<8> bits;     /* varbit length or advance amount, in bits */
}

header opt_t {
    bit<8>      kind;
    varbit<32>  data;   /* max_length 5 bytes: kind and at most 4 bytes of data */
}

header tag_t {
    bit<8> v;
}

header res_t {
    bit<8> err;      /* 0 NoError, 1 PacketTooShort, 4 HeaderTooShort, 6 ParserInvalidArgument, 9 other */
}

struct headers_t {
    ethernet_t ethernet;
    res_t      res;
    pre_t      pre;
    opt_t      opt;
    tag_t      tag;
}

struct metadata_t { }

parser ErrParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.pre);
        transition select(hdr.ethernet.etherType) {
            0x9000: parse_opt;
            0x9001: skip;
            default: accept;
        }
    }

    state parse_opt {
        pkt.extract(hdr.opt, (bit<32>)hdr.pre.bits);
        transition accept;
    }

    state skip {
        pkt.advance((bit<32>)hdr.pre.bits);
        pkt.extract(hdr.tag);
        transition accept;
    }
}

control ErrVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control ErrIngress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    apply {
        std.egress_spec = 1;
        hdr.res.setValid();
        if (std.parser_error == error.NoError) {
            hdr.res.err = 0;
        } else if (std.parser_error == error.PacketTooShort) {
            hdr.res.err = 1;
        } else if (std.parser_error == error.HeaderTooShort) {
            hdr.res.err = 4;
        } else if (std.parser_error == error.ParserInvalidArgument) {
            hdr.res.err = 6;
        } else {
            hdr.res.err = 9;
        }
    }
}

control ErrEgress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    apply { }
}

control ErrComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control ErrDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.res);
        pkt.emit(hdr.pre);
        pkt.emit(hdr.opt);
        pkt.emit(hdr.tag);
    }
}

V1Switch(ErrParser(), ErrVerifyChecksum(), ErrIngress(), ErrEgress(), ErrComputeChecksum(),
         ErrDeparser()) main;
