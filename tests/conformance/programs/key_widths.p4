/* Conformance program: keys whose P4Info and JSON widths differ or that p4c computes:
 * an error field (0 bits, a string, in the P4Info; 32 in the JSON), a sum, a slice and a
 * cast (scalars in the JSON). t_expr sets k.b from its entry; frames carry k.a, k.b. */
#include <core.p4>
#include <v1model.p4>
header ethernet_t { bit<48> dstAddr; bit<48> srcAddr; bit<16> etherType; }
header k_t { bit<8> a; bit<8> b; }
struct headers_t { ethernet_t ethernet; k_t k; }
struct metadata_t { }
parser P(packet_in pkt, out headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) {
    state start { pkt.extract(hdr.ethernet); pkt.extract(hdr.k); transition accept; }
}
control VC(inout headers_t hdr, inout metadata_t meta) { apply { } }
control I(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) {
    action set(bit<8> v) { hdr.k.b = v; }
    table t_err { key = { std.parser_error : exact; } actions = { set; NoAction; } default_action = NoAction(); }
    table t_expr { key = { hdr.k.a + hdr.k.b : exact @name("sum"); hdr.k.a[3:0] : exact @name("lo"); (bit<4>)hdr.k.b : ternary @name("cast"); } actions = { set; NoAction; } default_action = NoAction(); }
    apply { std.egress_spec = 1; t_err.apply(); t_expr.apply(); }
}
control E(inout headers_t hdr, inout metadata_t meta, inout standard_metadata_t std) { apply { } }
control CC(inout headers_t hdr, inout metadata_t meta) { apply { } }
control D(packet_out pkt, in headers_t hdr) { apply { pkt.emit(hdr.ethernet); pkt.emit(hdr.k); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
