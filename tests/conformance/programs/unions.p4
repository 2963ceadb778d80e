/* Conformance program: a header union stack.
 * A list of options, each either kind 0xA (opt_a_t) or kind 0xB (opt_b_t), parsed into
 * a stack of unions with lookahead; ingress pops or pushes whole unions. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header count_t {
    bit<8> n;      /* options that follow */
    bit<8> op;     /* 1: pop_front(1), 2: push_front(1) a new option A */
}

header opt_a_t {
    bit<8> kind;
    bit<8> a;
}

header opt_b_t {
    bit<8>  kind;
    bit<16> b;
}

header_union opt_t {
    opt_a_t a;
    opt_b_t b;
}

struct headers_t {
    ethernet_t ethernet;
    count_t    cnt;
    opt_t[3]   opts;
}

struct metadata_t {
    bit<8> left;
}

parser UParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
               inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.cnt);
        meta.left = hdr.cnt.n;
        transition next_option;
    }
    state next_option {
        transition select(meta.left, pkt.lookahead<bit<8>>()) {
            (0, _): accept;
            (_, 0xA): option_a;
            (_, 0xB): option_b;
            default: accept;
        }
    }
    state option_a {
        pkt.extract(hdr.opts.next.a);
        meta.left = meta.left - 1;
        transition next_option;
    }
    state option_b {
        pkt.extract(hdr.opts.next.b);
        meta.left = meta.left - 1;
        transition next_option;
    }
}

control UVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control UIngress(inout headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    apply {
        std.egress_spec = 1;
        if (hdr.cnt.op == 1) {
            hdr.opts.pop_front(1);
        } else if (hdr.cnt.op == 2) {
            hdr.opts.push_front(1);
            hdr.opts[0].a.setValid();
            hdr.opts[0].a.kind = 0xA;
            hdr.opts[0].a.a = 0x77;
        }
    }
}

control UEgress(inout headers_t hdr, inout metadata_t meta,
                inout standard_metadata_t std) {
    apply { }
}

control UComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control UDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.cnt);
        pkt.emit(hdr.opts);
    }
}

V1Switch(UParser(), UVerifyChecksum(), UIngress(), UEgress(),
         UComputeChecksum(), UDeparser()) main;
