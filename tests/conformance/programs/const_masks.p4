/* Conformance program: const entries written with bits their mask or prefix leaves out.
 * p4c copies such values into the BMv2 JSON as written; BMv2 clears the bits outside the
 * ternary mask and beyond the LPM prefix before matching, so 0xFF &&& 0x0F matches any
 * byte whose low nibble is 0xF, and 0xABCD/8 matches 0xAB00 to 0xABFF. Ingress writes
 * the value each table's action set into a result header emitted after the key. */
#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dstAddr;
    bit<48> srcAddr;
    bit<16> etherType;
}

header key_t {
    bit<8>  t;      /* ternary key */
    bit<16> l;      /* lpm key */
}

header res_t {
    bit<8> ternary;
    bit<8> lpm;
}

struct headers_t {
    ethernet_t ethernet;
    key_t      k;
    res_t      res;
}

struct metadata_t { }

parser MaskParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        pkt.extract(hdr.k);
        transition accept;
    }
}

control MaskVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control MaskIngress(inout headers_t hdr, inout metadata_t meta,
                    inout standard_metadata_t std) {
    action set_ternary(bit<8> v) { hdr.res.ternary = v; }
    action set_lpm(bit<8> v) { hdr.res.lpm = v; }

    table t_ternary {
        key = { hdr.k.t : ternary; }
        actions = { set_ternary; }
        const entries = {
            8w0xFF &&& 8w0x0F : set_ternary(1);   /* low nibble 0xF */
            8w0x35 &&& 8w0xF0 : set_ternary(2);   /* high nibble 0x3 */
        }
        default_action = set_ternary(0xEE);
    }

    table t_lpm {
        key = { hdr.k.l : lpm; }
        actions = { set_lpm; }
        const entries = {
            16w0xABCD &&& 16w0xFF00 : set_lpm(1);   /* 0xAB00/8 */
            16w0x12FF &&& 16w0xFFF0 : set_lpm(2);   /* 0x12F0/12 */
        }
        default_action = set_lpm(0xEE);
    }

    apply {
        std.egress_spec = 1;
        hdr.res.setValid();
        t_ternary.apply();
        t_lpm.apply();
    }
}

control MaskEgress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    apply { }
}

control MaskComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply { }
}

control MaskDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.k);
        pkt.emit(hdr.res);
    }
}

V1Switch(MaskParser(), MaskVerifyChecksum(), MaskIngress(), MaskEgress(), MaskComputeChecksum(),
         MaskDeparser()) main;
