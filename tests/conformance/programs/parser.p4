/* Conformance program: parser constructs.
 * Header stacks filled with .next and tested with .last, lookahead in a two-field
 * select with masks, verify, a value set, and every parser error; ingress reports what
 * the parser saw in a result header (res_t) emitted after Ethernet. */
#include <core.p4>
#include <v1model.p4>

error {
    BadKind
}

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header tag_t {
    bit<8> kind;
    bit<8> len;
}

header res_t {
    bit<8> err;      /* 0 none, 1 PacketTooShort, 2 NoMatch, 3 StackOutOfBounds, 4 BadKind, 9 other */
    bit<8> count;    /* tags extracted, counted in the parser */
    bit<8> path;     /* which states ran */
    bit<8> la;       /* lookahead byte after Ethernet */
    bit<8> first;    /* kind of tags[0], 0xFF if invalid */
    bit<8> size;     /* valid tags */
}

struct headers_t {
    ethernet_t ethernet;
    res_t      res;
    tag_t[3]   tags;
}

struct metadata_t {
    bit<8> count;
    bit<8> path;
    bit<8> la;
}

parser TagParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                 inout standard_metadata_t std) {
    value_set<bit<16>>(4) special_types;

    state start {
        pkt.extract(hdr.ethernet);
        meta.path = 1;
        transition select(hdr.ethernet.etherType, pkt.lookahead<bit<8>>()) {
            (0x9000, 8w0x00 &&& 8w0x80): parse_tags;
            (0x9000, _): high_bit;
            (0x9001, _): parse_checked;
            (0x9100 &&& 0xFF00, _): low_byte_any;
            default: check_special;
        }
    }

    state parse_tags {
        meta.la = pkt.lookahead<bit<8>>();
        meta.path = 2;
        transition parse_tag;
    }

    state parse_tag {
        pkt.extract(hdr.tags.next);
        meta.count = meta.count + 1;
        transition select(hdr.tags.last.kind) {
            0: accept;
            default: parse_tag;
        }
    }

    state high_bit {
        meta.la = pkt.lookahead<bit<8>>();
        meta.path = 3;
        transition accept;
    }

    state parse_checked {
        meta.path = 4;
        pkt.extract(hdr.tags.next);
        verify(hdr.tags[0].kind != 0xFF, error.BadKind);
        transition select(hdr.tags[0].len) {
            1: accept;
            2: accept;
        }
    }

    state low_byte_any {
        meta.path = 5;
        transition accept;
    }

    state check_special {
        transition select(hdr.ethernet.etherType) {
            special_types: special;
            default: accept;
        }
    }

    state special {
        meta.path = 6;
        pkt.advance(16);
        pkt.extract(hdr.tags.next);
        transition accept;
    }
}

control TagVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control TagIngress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    apply {
        std.egress_spec = 1;
        hdr.res.setValid();
        if (std.parser_error == error.NoError) {
            hdr.res.err = 0;
        } else if (std.parser_error == error.PacketTooShort) {
            hdr.res.err = 1;
        } else if (std.parser_error == error.NoMatch) {
            hdr.res.err = 2;
        } else if (std.parser_error == error.StackOutOfBounds) {
            hdr.res.err = 3;
        } else if (std.parser_error == error.BadKind) {
            hdr.res.err = 4;
        } else {
            hdr.res.err = 9;
        }
        hdr.res.count = meta.count;
        hdr.res.path = meta.path;
        hdr.res.la = meta.la;
        if (hdr.tags[0].isValid()) {
            hdr.res.first = hdr.tags[0].kind;
        } else {
            hdr.res.first = 0xFF;
        }
        hdr.res.size = 0;
        if (hdr.tags[0].isValid()) { hdr.res.size = hdr.res.size + 1; }
        if (hdr.tags[1].isValid()) { hdr.res.size = hdr.res.size + 1; }
        if (hdr.tags[2].isValid()) { hdr.res.size = hdr.res.size + 1; }
    }
}

control TagEgress(inout headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    apply { }
}

control TagComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control TagDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.res);
        pkt.emit(hdr.tags);
    }
}

V1Switch(TagParser(), TagVerifyChecksum(), TagIngress(), TagEgress(),
         TagComputeChecksum(), TagDeparser()) main;
