/* Conformance program: header operations, hashes and the remaining externs.
 * push_front/pop_front, setValid/setInvalid, a header union, header assignment, a
 * stack element chosen at run time, hash() with each v1model algorithm, random with
 * a single-value range, log_msg and assert. Results go to out_t. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header op_t {
    bit<8> op;     /* 1 push_front(1), 2 pop_front(1), 3 write items[idx], 4 union b */
    bit<8> idx;
    bit<8> v;
    bit<8> sel;    /* 0: union member a follows, 1: member b */
}

header item_t {
    bit<8> v;
}

header a_t {
    bit<16> a;
}

header b_t {
    bit<8> b;
}

header_union u_t {
    a_t a;
    b_t b;
}

header out_t {
    bit<16> crc16;
    bit<32> crc32;
    bit<16> csum16;
    bit<16> identity;
    bit<16> xor16;
    bit<8>  rnd;
    bit<8>  union_valid;   /* bit 1: a valid, bit 0: b valid */
    bit<8>  copy_v;
}

struct headers_t {
    ethernet_t ethernet;
    op_t       op;
    item_t[4]  items;
    u_t        u;
    item_t     copy;
    out_t      res;
}

struct metadata_t {
    bit<8> n;
}

parser MiscParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.op);
        pkt.extract(hdr.items.next);
        pkt.extract(hdr.items.next);
        transition select(hdr.op.sel) {
            0: parse_a;
            default: parse_b;
        }
    }
    state parse_a {
        pkt.extract(hdr.u.a);
        transition accept;
    }
    state parse_b {
        pkt.extract(hdr.u.b);
        transition accept;
    }
}

control MiscVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control MiscIngress(inout headers_t hdr, inout metadata_t meta,
                    inout standard_metadata_t std) {
    apply {
        std.egress_spec = 1;
        assert(hdr.op.v != 0xEE);
        log_msg("op={} idx={}", {hdr.op.op, hdr.op.idx});
        if (hdr.op.op == 1) {
            hdr.items.push_front(1);
            hdr.items[0].setValid();
            hdr.items[0].v = hdr.op.v;
        } else if (hdr.op.op == 2) {
            hdr.items.pop_front(1);
        } else if (hdr.op.op == 3) {
            hdr.items[hdr.op.idx].v = hdr.op.v;
        } else if (hdr.op.op == 4) {
            hdr.u.b.setValid();
            hdr.u.b.b = hdr.op.v;
        } else if (hdr.op.op == 5) {
            hdr.items[1].setInvalid();
        }
        hdr.copy = hdr.items[0];
        hdr.res.setValid();
        hash(hdr.res.crc16, HashAlgorithm.crc16, 16w0, { hdr.op.op, hdr.op.idx, hdr.op.v }, 32w65536);
        hash(hdr.res.crc32, HashAlgorithm.crc32, 32w0, { hdr.op.op, hdr.op.idx, hdr.op.v }, 64w4294967296);
        hash(hdr.res.csum16, HashAlgorithm.csum16, 16w0, { hdr.op.op, hdr.op.idx, hdr.op.v }, 32w65536);
        hash(hdr.res.identity, HashAlgorithm.identity, 16w0, { hdr.op.idx, hdr.op.v }, 32w65536);
        hash(hdr.res.xor16, HashAlgorithm.xor16, 16w0, { hdr.op.op, hdr.op.idx, hdr.op.v, hdr.op.sel }, 32w65536);
        random(hdr.res.rnd, 8w9, 8w9);
        hdr.res.union_valid = 0;
        if (hdr.u.a.isValid()) { hdr.res.union_valid = hdr.res.union_valid | 2; }
        if (hdr.u.b.isValid()) { hdr.res.union_valid = hdr.res.union_valid | 1; }
        if (hdr.copy.isValid()) { hdr.res.copy_v = hdr.copy.v; } else { hdr.res.copy_v = 0xFF; }
    }
}

control MiscEgress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    apply { }
}

control MiscComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control MiscDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.op);
        pkt.emit(hdr.items);
        pkt.emit(hdr.u);
        pkt.emit(hdr.copy);
        pkt.emit(hdr.res);
    }
}

V1Switch(MiscParser(), MiscVerifyChecksum(), MiscIngress(), MiscEgress(),
         MiscComputeChecksum(), MiscDeparser()) main;
