/* Conformance program: whole headers chosen at run time. p4c inlines the action call
 * note(b.isValid(), c ? b : a) into an assign_header whose source is a `?` between two
 * headers (a header-valued argument), and the validity argument into a read of $valid$.
 * Header b is parsed only when bit 7 of sel.op is clear, so either header may be
 * invalid; copying an invalid header makes the copy invalid. The output is Ethernet,
 * sel, res, the copy o, then a and b as parsed. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header sel_t {
    bit<8> op;       /* bit 0: copy b (else a); bit 7: b is absent */
}

header pair_t {
    bit<8> x;
    bit<8> y;
}

header res_t {
    bit<8> valid_b;  /* the validity argument: 1 when b was parsed */
    bit<8> x_of_o;   /* o.x read back through the copy, 0xEE when o is invalid */
}

struct headers_t {
    ethernet_t ethernet;
    sel_t      sel;
    res_t      res;
    pair_t     o;
    pair_t     a;
    pair_t     b;
}

struct metadata_t { }

parser MuxParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.sel);
        pkt.extract(hdr.a);
        transition select(hdr.sel.op[7:7]) {
            1: accept;
            default: parse_b;
        }
    }

    state parse_b {
        pkt.extract(hdr.b);
        transition accept;
    }
}

control MuxVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control MuxIngress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    action note(bool b_valid, pair_t h) {
        hdr.res.valid_b = b_valid ? 8w1 : 8w0;
        hdr.o = h;
    }

    apply {
        std.egress_spec = 1;
        hdr.res.setValid();
        note(hdr.b.isValid(), hdr.sel.op[0:0] == 1 ? hdr.b : hdr.a);
        hdr.res.x_of_o = hdr.o.isValid() ? hdr.o.x : 8w0xEE;
    }
}

control MuxEgress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    apply { }
}

control MuxComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control MuxDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.sel);
        pkt.emit(hdr.res);
        pkt.emit(hdr.o);
        pkt.emit(hdr.a);
        pkt.emit(hdr.b);
    }
}

V1Switch(MuxParser(), MuxVerifyChecksum(), MuxIngress(), MuxEgress(), MuxComputeChecksum(),
         MuxDeparser()) main;
