/* DCIA data plane: in-network inference stages for v1model (BMv2 simple_switch_grpc).
 *
 * A tensor packet is Ethernet / IPv4 / UDP (dst port DCIA_UDP_PORT) / DCIA header /
 * n_elems int8 elements (docs/wire-format.md). When this switch holds the state of the
 * packet's (model id, model version, next layer), it computes that layer on the elements,
 * advances next_layer and, if the controller marked more layers for this switch,
 * recirculates to compute the next one. Without that state it forwards the packet
 * unchanged: the next capable node, ultimately the cloud, finishes the work.
 *
 * Every run-time parameter (weights, biases, requantization, steering) is table action
 * data, because BMv2's P4Runtime server cannot write registers. The integer semantics
 * of each layer are defined by dcia/arithmetic.py; this program must agree bit for bit.
 *
 * Sizes: a layer reads and writes at most MAX_NET_ELEMS (16) elements; one switch
 * computes at most MAX_PASSES (8) consecutive layers of one packet.
 *
 * Load: every layer entry has a packet-rate meter (direct_meter on `layers`, configured
 * by the controller from the switch's advertised capacity). A packet above the committed
 * rate is not computed here: it goes on unchanged, counted as deferred, and the next
 * capable node computes the layer. Steering goes through an action selector, so a
 * (model, next layer) can be spread over several next hops by weight; the selector
 * hashes the source address and the request id, so one request (and its retries) always
 * takes the same member.
 *
 * Fusion: a fusion layer joins the tensors of the members of one fusion group (packets
 * with FLAG_FUSE: request_id is the group id, reserved the member index and group size)
 * into their element-wise maximum. The first members wait in registers (a slot per group,
 * group id modulo FUSE_SLOTS) and are dropped once stored; the member that completes the
 * group carries the fused tensor on. A group still incomplete after its timeout is
 * released, fused over the members present, in the next packet that needs its slot or in
 * a flush packet; BMv2 has no timers (docs/wire-format.md, "Fusion").
 *
 * Tenants: where the operator's policy restricts a model to some sources, the switches
 * that hold it get `model_tenants` entries (a deny for every source, an allow per
 * permitted prefix, longest prefix wins); a tensor of that model from any other source
 * is counted as unauthorised and dropped, never computed with another tenant's weights.
 */
#include <core.p4>
#include <v1model.p4>

/* ------------------------------------------------------------------ constants -- */

const bit<16> TYPE_IPV4     = 0x0800;
const bit<8>  PROTO_UDP     = 17;
const bit<16> ETH_HDR_BYTES = 14;
const bit<16> DCIA_UDP_PORT = 0xDC1A;      /* 56346 */
const bit<8>  DCIA_VERSION  = 1;
const bit<16> UDP_HDR_BYTES  = 8;
const bit<16> DCIA_HDR_BYTES = 16;

#define MAX_NET_ELEMS 16                   /* elements a switch reads or writes */
const bit<16> MAX_WIRE_ELEMS = 1024;       /* elements a well-formed packet may carry */
const bit<8>  MAX_PASSES     = 8;          /* layers one switch computes per packet */

/* DCIA flags: a packet with any of these five set is never computed. */
const bit<8> FLAG_RESULT     = 0x01;       /* the answer, travelling back to the edge */
const bit<8> FLAG_ERROR      = 0x02;       /* an error report; status holds the code */
const bit<8> FLAG_MALFORMED  = 0x04;       /* a switch found the packet malformed */
const bit<8> FLAG_NO_OFFLOAD = 0x08;       /* the sender forbids in-network compute */
const bit<8> FLAG_ENCRYPTED  = 0x10;       /* sealed end to end (AES-GCM): opaque bytes */
const bit<8> FLAGS_NO_COMPUTE = 0x1F;
const bit<8> FLAG_FUSE       = 0x20;       /* a member of fusion group request_id */
const bit<8> FLAG_FUSED      = 0x40;       /* a fusion's output; reserved: members fused */

/* Layer kinds and activations, as set by the `layers` table. */
const bit<8> KIND_NONE        = 0;
const bit<8> KIND_DENSE       = 1;
const bit<8> KIND_ELEMENTWISE = 2;
const bit<8> KIND_EMBEDDING   = 3;
const bit<8> KIND_FUSION      = 4;
const bit<8> KIND_EMBEDDING_BAG = 5;
const bit<8> BAG_SUM          = 0;         /* embedding-bag pooling: saturating sum */
const bit<8> BAG_MEAN         = 1;         /*   mean over the tokens, rounded half up */
const bit<8> BAG_PAD          = 0;         /* token id 0: padding, looked up nowhere */
#define BAG_SHIFT 24                       /* mean: ((s + 128 c) * ceil(2^24 / c) + 2^23) >> 24, - 128 */
const bit<8> ACT_IDENTITY     = 0;
const bit<8> ACT_RELU         = 1;

/* Indices of the dcia_stats counter. */
const bit<32> STAT_COMPUTED         = 0;   /* layers computed */
const bit<32> STAT_PASSTHROUGH      = 1;   /* tensor packets forwarded without state */
const bit<32> STAT_VERSION_MISMATCH = 2;   /* known model, another version: not computed */
const bit<32> STAT_MALFORMED        = 3;   /* malformed tensor packets: never computed */
const bit<32> STAT_DEFERRED         = 4;   /* layers left to the next node: over the meter rate */
const bit<32> STAT_UNAUTHORISED     = 5;   /* a restricted model's tensor from another source: dropped */

/* Indices of the fusion_stats counter. */
const bit<32> FUSE_FUSED     = 0;          /* complete groups fused and sent on */
const bit<32> FUSE_TIMED_OUT = 1;          /* incomplete groups released after their timeout */
const bit<32> FUSE_DUPLICATE = 2;          /* members already fused or waiting: dropped */
const bit<32> FUSE_COLLISION = 3;          /* slot held by another waiting group: sent on unfused */
const bit<32> FUSE_STORED    = 4;          /* members stored in their slot (and dropped) */
const bit<32> FUSE_LATE      = 5;          /* members of a group released without them: sent on unfused */
const bit<32> FUSE_IDLE      = 6;          /* flush packets with nothing to release: dropped */

/* Group slots: a group takes slot request_id % FUSE_SLOTS. */
#define FUSE_SLOTS 256
const bit<32> FUSE_SLOT_MASK = 255;
const bit<8>  FUSE_FLUSH     = 0xF;        /* member index of a flush packet */

/* Indices of the ipv4_drops counter: IPv4 packets of any protocol that a router must not
 * forward, dropped before anything else looks at them. */
const bit<32> DROP_TTL_EXPIRED  = 0;       /* arrived with TTL 0 or 1 */
const bit<32> DROP_BAD_CHECKSUM = 1;       /* IPv4 header or tensor UDP checksum wrong */
const bit<32> DROP_BAD_HEADER   = 2;       /* version not 4, ihl < 5, impossible total length */

/* Outcome of the model_versions look-up. */
const bit<8> MODEL_UNKNOWN       = 0;
const bit<8> MODEL_VERSION_HERE  = 1;
const bit<8> MODEL_OTHER_VERSION = 2;

/* Meter colours (v1model): above the committed rate is YELLOW, above the peak RED. */
const bit<2> METER_GREEN = 0;

typedef bit<9>  egressSpec_t;
typedef bit<48> macAddr_t;
typedef bit<32> ip4Addr_t;

/* -------------------------------------------------------------------- headers -- */

header ethernet_t {
    macAddr_t dstAddr;
    macAddr_t srcAddr;
    bit<16>   etherType;
}

header ipv4_t {
    bit<4>    version;
    bit<4>    ihl;
    bit<8>    diffserv;
    bit<16>   totalLen;
    bit<16>   identification;
    bit<3>    flags;
    bit<13>   fragOffset;
    bit<8>    ttl;
    bit<8>    protocol;
    bit<16>   hdrChecksum;
    ip4Addr_t srcAddr;
    ip4Addr_t dstAddr;
}

/* IPv4 options, (ihl - 5) 32-bit words: kept as they are, covered by the checksum. */
header ipv4_options_t {
    varbit<320> options;
}

header udp_t {
    bit<16> srcPort;
    bit<16> dstPort;
    bit<16> length_;
    bit<16> checksum;     /* set to 0 (no checksum) whenever a switch rewrites the payload */
}

/* The DCIA header: 16 bytes, big-endian, documented in docs/wire-format.md. */
header dcia_t {
    bit<8>  ver;            /* DCIA_VERSION; any other value is malformed */
    bit<8>  flags;          /* FLAG_* */
    bit<16> model_id;
    bit<16> model_version;
    bit<8>  next_layer;     /* index of the next layer to compute */
    bit<8>  net_layers;     /* layers computed in the network so far */
    bit<32> request_id;     /* chosen by the edge; echoed in the answer */
    bit<16> n_elems;        /* int8 elements that follow */
    bit<8>  status;         /* error code when FLAG_ERROR is set */
    bit<8>  reserved;       /* 0 */
}

/* One int8 tensor element; the tensor is a stack of them, parsed by n_elems. */
header elem_t {
    bit<8> v;
}

struct headers_t {
    ethernet_t           ethernet;
    ipv4_t               ipv4;
    ipv4_options_t       ipv4_options;
    udp_t                udp;
    dcia_t               dcia;
    elem_t[MAX_NET_ELEMS] elems;
}

/* Sixteen metadata fields p0 .. p15 (inputs x, outputs y of a layer). */
#define ELEMENT_FIELDS(p) \
    bit<8> p##0;  bit<8> p##1;  bit<8> p##2;  bit<8> p##3;  \
    bit<8> p##4;  bit<8> p##5;  bit<8> p##6;  bit<8> p##7;  \
    bit<8> p##8;  bit<8> p##9;  bit<8> p##10; bit<8> p##11; \
    bit<8> p##12; bit<8> p##13; bit<8> p##14; bit<8> p##15;

struct metadata_t {
    @field_list(0)
    bit<8>   passes;         /* layers this switch already computed on this packet */
    bit<16>  elems_left;     /* parser loop counter */
    bit<8>   model_state;    /* MODEL_* */
    bit<8>   kind;           /* KIND_* of the layer being computed */
    bit<16>  n_in;
    bit<16>  n_out;
    bit<8>   act;            /* ACT_* */
    bit<1>   more;           /* the controller put the next layer on this switch too */
    bit<1>   incomplete;     /* some parameter of the layer is missing: do not compute */
    bit<1>   recirculate;
    bit<1>   tensor_parsed;  /* every element was parsed (n_elems <= MAX_NET_ELEMS) */
    bit<128> ew_scales;      /* element-wise layer parameters */
    bit<256> ew_offsets;
    bit<16>  embed_id;
    bit<8>   bag_mode;       /* embedding-bag: BAG_SUM or BAG_MEAN */
    bit<8>   bag_count;      /*   tokens that are not padding */
    int<64>  bag_recip;      /*   ceil(2^BAG_SHIFT / bag_count) */
    int<32>  bs0;  int<32> bs1;  int<32> bs2;  int<32> bs3;    /* the sums of the vectors */
    int<32>  bs4;  int<32> bs5;  int<32> bs6;  int<32> bs7;
    int<32>  bs8;  int<32> bs9;  int<32> bs10; int<32> bs11;
    int<32>  bs12; int<32> bs13; int<32> bs14; int<32> bs15;
    int<32>  acc;            /* accumulator of the element being computed */
    bit<16>  mult;           /* its requantization multiplier and shift */
    bit<8>   shift;
    bit<2>   color;          /* the layer meter's verdict: METER_GREEN computes */
    bit<1>   unauthorised;   /* model_tenants: this source may not use this model here */
    int<64>  q;              /* its requantized value before saturation */
    bit<8>   yq;             /* and after: the int8 output */
    bit<8>   fuse_k;         /* fusion layer: members of a group */
    bit<48>  fuse_timeout;   /* how long a group waits, microseconds */
    bit<32>  fuse_slot;      /* register index of the packet's group */
    bit<8>   fuse_bit;       /* 1 << member index */
    bit<1>   fuse_drop;      /* stored, duplicate or idle flush: not sent on */
    bit<1>   fuse_out;       /* a fused tensor leaves in this packet */
    bit<32>  s_group;        /* the slot as read: group id (0: never used) */
    bit<40>  s_layer;        /*   model_id ++ model_version ++ layer */
    bit<8>   s_members;      /*   bitmap of the members in the fusion */
    bit<1>   s_released;     /*   the group has left (fused or timed out) */
    bit<48>  s_deadline;     /*   first arrival + timeout */
    bit<128> s_vec;          /*   the fusion so far, element 0 in the top byte */
    bit<104> s_origin;       /*   first member: src ip, dst ip, udp src port, net_layers, n, more */
    ELEMENT_FIELDS(x)
    ELEMENT_FIELDS(y)
}

error {
    DciaBadVersion,
    DciaTooManyElements
}

/* --------------------------------------------------------------------- parser -- */

parser DciaParser(packet_in pkt, out headers_t hdr, inout metadata_t meta,
                  inout standard_metadata_t std) {
    state start {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.etherType) {
            TYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }

    /* A header that cannot be IPv4 (version, ihl < 5) stops here; ingress drops it. */
    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        transition select(hdr.ipv4.version, hdr.ipv4.ihl) {
            (4w4, 4w5): parse_ipv4_payload;
            (4w4, 4w0 &&& 4w0xC): accept;        /* ihl 0 .. 3 */
            (4w4, 4w4): accept;
            (4w4, _): parse_ipv4_options;        /* ihl 6 .. 15 */
            default: accept;
        }
    }

    state parse_ipv4_options {
        pkt.extract(hdr.ipv4_options, ((bit<32>)hdr.ipv4.ihl - 5) * 32);
        transition parse_ipv4_payload;
    }

    /* UDP only in a datagram that is not fragmented (MF clear, offset 0): a tensor split
     * over fragments is never computed, only forwarded as IP. */
    state parse_ipv4_payload {
        transition select(hdr.ipv4.flags, hdr.ipv4.fragOffset, hdr.ipv4.protocol) {
            (3w0 &&& 3w1, 13w0, PROTO_UDP): parse_udp;
            default: accept;
        }
    }

    state parse_udp {
        pkt.extract(hdr.udp);
        transition select(hdr.udp.dstPort) {
            DCIA_UDP_PORT: parse_dcia;
            default: accept;
        }
    }

    state parse_dcia {
        pkt.extract(hdr.dcia);
        verify(hdr.dcia.ver == DCIA_VERSION, error.DciaBadVersion);
        verify(hdr.dcia.n_elems <= MAX_WIRE_ELEMS, error.DciaTooManyElements);
        meta.elems_left = hdr.dcia.n_elems;
        /* Tensors of up to MAX_NET_ELEMS are parsed; larger ones travel as payload. */
        transition select(hdr.dcia.n_elems) {
            16w0 &&& 16w0xFFF0: parse_elems;
            16w16: parse_elems;
            default: accept;
        }
    }

    state parse_elems {
        transition select(meta.elems_left) {
            0: elems_parsed;
            default: parse_elem;
        }
    }

    state elems_parsed {
        meta.tensor_parsed = 1;
        transition accept;
    }

    state parse_elem {
        pkt.extract(hdr.elems.next);   /* a short packet fails here: PacketTooShort */
        meta.elems_left = meta.elems_left - 1;
        transition parse_elems;
    }
}

/* A wrong checksum sets std.checksum_error; ingress drops the packet. Checked: the IPv4
 * header, and the UDP checksum of a tensor a switch could compute on or rewrite (it then
 * sets the checksum to 0, which would hide a corrupt tensor from the receiver). That is a
 * tensor parsed whole whose UDP length says nothing follows it, so that the pseudo-header,
 * the UDP and DCIA headers and the elements are the whole datagram. A UDP checksum of 0
 * means none; 0xFFFF, how a sum of 0 is sent, is not checked. */
#define ELEM_VALUES                                                                  \
    hdr.elems[0].v,  hdr.elems[1].v,  hdr.elems[2].v,  hdr.elems[3].v,               \
    hdr.elems[4].v,  hdr.elems[5].v,  hdr.elems[6].v,  hdr.elems[7].v,               \
    hdr.elems[8].v,  hdr.elems[9].v,  hdr.elems[10].v, hdr.elems[11].v,              \
    hdr.elems[12].v, hdr.elems[13].v, hdr.elems[14].v, hdr.elems[15].v

control DciaVerifyChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply {
        verify_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.fragOffset,
              hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr,
              hdr.ipv4_options.options },
            hdr.ipv4.hdrChecksum, HashAlgorithm.csum16);
        verify_checksum(meta.tensor_parsed == 1
                && hdr.udp.checksum != 0 && hdr.udp.checksum != 0xFFFF
                && hdr.udp.length_ == UDP_HDR_BYTES + DCIA_HDR_BYTES + hdr.dcia.n_elems,
            { hdr.ipv4.srcAddr, hdr.ipv4.dstAddr, 8w0, hdr.ipv4.protocol, hdr.udp.length_,
              hdr.udp.srcPort, hdr.udp.dstPort, hdr.udp.length_,
              hdr.dcia, ELEM_VALUES },
            hdr.udp.checksum, HashAlgorithm.csum16);
    }
}

/* ------------------------------------------------------------------ arithmetic -- */

/* Sign-extend an int8 held in a bit<8> to int<32>. */
#define S32(b) ((int<32>)(int<8>)(b))

/* Weight i of a packed bit<128> row: byte i of the P4Runtime byte string (big-endian). */
#define W(w, i) S32(w[127 - 8 * (i) : 120 - 8 * (i)])

/* ------------------------------------------------------------------- ingress -- */

control DciaIngress(inout headers_t hdr, inout metadata_t meta,
                    inout standard_metadata_t std) {

    counter(6, CounterType.packets_and_bytes) dcia_stats;     /* STAT_* */
    counter(3, CounterType.packets_and_bytes) ipv4_drops;     /* DROP_* */
    counter(256, CounterType.packets_and_bytes) layer_stats;  /* by layer index */
    counter(7, CounterType.packets_and_bytes) fusion_stats;   /* FUSE_* */

    /* Fusion group slots (data-plane state; the controller never writes them). */
    register<bit<32>>(FUSE_SLOTS)  fuse_group;
    register<bit<40>>(FUSE_SLOTS)  fuse_layer;
    register<bit<8>>(FUSE_SLOTS)   fuse_members;
    register<bit<1>>(FUSE_SLOTS)   fuse_released;
    register<bit<48>>(FUSE_SLOTS)  fuse_deadline;
    register<bit<128>>(FUSE_SLOTS) fuse_vec;
    register<bit<104>>(FUSE_SLOTS) fuse_origin;

    /* ---- ordinary IPv4 forwarding ---- */

    action drop() {
        mark_to_drop(std);
    }

    action drop_counted(bit<32> reason) {
        ipv4_drops.count(reason);
        mark_to_drop(std);
    }

    action ipv4_forward(macAddr_t dst_mac, egressSpec_t port) {
        std.egress_spec = port;
        hdr.ethernet.srcAddr = hdr.ethernet.dstAddr;
        hdr.ethernet.dstAddr = dst_mac;
    }

    table ipv4_lpm {
        key = { hdr.ipv4.dstAddr: lpm @name("ipv4_dst"); }
        actions = { ipv4_forward; drop; }
        size = 1024;
        default_action = drop();
    }

    /* ---- steering: where a tensor packet goes next, by model and next layer ---- */

    action steer(egressSpec_t port, macAddr_t dst_mac) {
        std.egress_spec = port;
        hdr.ethernet.srcAddr = hdr.ethernet.dstAddr;
        hdr.ethernet.dstAddr = dst_mac;
    }

    /* Redirect to another node: also rewrite the IPv4 destination. */
    action steer_redirect(egressSpec_t port, macAddr_t dst_mac, ip4Addr_t dst_ip) {
        steer(port, dst_mac);
        hdr.ipv4.dstAddr = dst_ip;
        hdr.udp.checksum = 0;
    }

    /* The last layer was computed here: turn the tensor into the answer and send it to
     * the edge, as if the node it was addressed to (the cloud) had answered. */
    action steer_answer(egressSpec_t port, macAddr_t dst_mac, ip4Addr_t edge_ip) {
        steer(port, dst_mac);
        hdr.ipv4.srcAddr = hdr.ipv4.dstAddr;
        hdr.ipv4.dstAddr = edge_ip;
        hdr.dcia.flags = hdr.dcia.flags | FLAG_RESULT;
        hdr.udp.checksum = 0;
    }

    /* Members are (action, weight) pairs; a member's watch port, where the target honours
     * it, takes the member out of the choice while that port is down (fast failover). */
    @max_group_size(64)
    action_selector(HashAlgorithm.crc32, 32w1024, 32w32) steering_selector;

    table tensor_steering {
        key = {
            hdr.dcia.model_id:   exact @name("model_id");
            hdr.dcia.next_layer: exact @name("layer");
            hdr.ipv4.srcAddr:    selector;
            hdr.dcia.request_id: selector;
        }
        actions = { steer; steer_redirect; steer_answer; }
        size = 1024;
        implementation = steering_selector;
    }

    /* ---- which sources may use a model here (the policy's tenants) ---- */

    action tenant_allowed() { meta.unauthorised = 0; }
    action tenant_denied()  { meta.unauthorised = 1; }

    /* No entry for a model: every source may use it. A restricted model has a deny for
     * 0.0.0.0/0 and an allow per permitted prefix. */
    table model_tenants {
        key = {
            hdr.dcia.model_id: exact @name("model_id");
            hdr.ipv4.srcAddr:  lpm @name("src");
        }
        actions = { tenant_allowed; tenant_denied; }
        size = 1024;
        default_action = tenant_allowed();
    }

    /* ---- which versions of a model this switch holds ---- */

    action version_here()  { meta.model_state = MODEL_VERSION_HERE; }
    action other_version() { meta.model_state = MODEL_OTHER_VERSION; }

    /* Per model: one entry per loaded version (version set, higher priority) and one
     * wildcard entry (version omitted, lower priority) with other_version.          */
    table model_versions {
        key = {
            hdr.dcia.model_id:      exact @name("model_id");
            hdr.dcia.model_version: optional @name("model_version");
        }
        actions = { version_here; other_version; NoAction; }
        size = 256;
        default_action = NoAction();
    }

    /* ---- the layer held for (model, version, next layer) ---- */

    direct_meter<bit<2>>(MeterType.packets) layer_meter;

    action dense_layer(bit<16> n_in, bit<16> n_out, bit<8> act, bit<1> more) {
        layer_meter.read(meta.color);
        meta.kind = KIND_DENSE;
        meta.n_in = n_in;
        meta.n_out = n_out;
        meta.act = act;
        meta.more = more;
    }

    /* y_i = requantize(scale_i * x_i + offset_i): int8 scales, int16 offsets. */
    action elementwise_layer(bit<16> n, bit<8> act, bit<16> mult, bit<8> shift,
                             bit<128> scales, bit<256> offsets, bit<1> more) {
        layer_meter.read(meta.color);
        meta.kind = KIND_ELEMENTWISE;
        meta.n_in = n;
        meta.n_out = n;
        meta.act = act;
        meta.mult = mult;
        meta.shift = shift;
        meta.ew_scales = scales;
        meta.ew_offsets = offsets;
        meta.more = more;
    }

    /* Input: two elements, the big-endian uint16 id; output: n_out elements. */
    action embedding_layer(bit<16> n_out, bit<1> more) {
        layer_meter.read(meta.color);
        meta.kind = KIND_EMBEDDING;
        meta.n_in = 2;
        meta.n_out = n_out;
        meta.act = ACT_IDENTITY;
        meta.more = more;
    }

    /* Embedding-bag: n_in token ids (one element each, uint8; 0 is padding), each looked
     * up in bag_<position>, their vectors pooled by `mode` into n_out elements. */
    action embedding_bag_layer(bit<16> n_in, bit<16> n_out, bit<8> mode, bit<1> more) {
        layer_meter.read(meta.color);
        meta.kind = KIND_EMBEDDING_BAG;
        meta.n_in = n_in;
        meta.n_out = n_out;
        meta.act = ACT_IDENTITY;
        meta.bag_mode = mode;
        meta.more = more;
    }

    /* Fuse the n-element tensors of `members` packets of one group (element-wise max);
     * an incomplete group waits at most timeout_us. Not metered: deferring one member
     * would split its group. */
    action fusion_layer(bit<16> n, bit<8> members, bit<32> timeout_us, bit<1> more) {
        meta.kind = KIND_FUSION;
        meta.n_in = n;
        meta.n_out = n;
        meta.act = ACT_IDENTITY;
        meta.fuse_k = members;
        meta.fuse_timeout = (bit<48>)timeout_us;
        meta.more = more;
    }

    table layers {
        key = {
            hdr.dcia.model_id:      exact @name("model_id");
            hdr.dcia.model_version: exact @name("model_version");
            hdr.dcia.next_layer:    exact @name("layer");
        }
        actions = { dense_layer; elementwise_layer; embedding_layer; embedding_bag_layer;
                    fusion_layer; NoAction; }
        size = 1024;
        default_action = NoAction();
        meters = layer_meter;
    }

    /* ---- requantization (dcia/arithmetic.py: requantize) ----
     *   q  = (acc * mult + 2^(shift-1)) >> shift    round half up; no rounding if shift = 0
     *   q  = max(q, 0)                              for ReLU
     *   yq = q saturated to [-128, 127]
     * An action of its own: p4c substitutes an expression into every later use of what it
     * assigned within one action, which would copy the 16-term dot product into each
     * comparison (a BMv2 JSON of tens of megabytes). */
    action requantize() {
        meta.q = ((int<64>)meta.acc * (int<64>)(bit<64>)meta.mult
                  + (int<64>)((64w1 << meta.shift) >> 1)) >> meta.shift;
        meta.q = (meta.act == ACT_RELU && meta.q < 0) ? 64s0 : meta.q;
        meta.yq = (meta.q > 127) ? 8w0x7F : ((meta.q < -128) ? 8w0x80 : meta.q[7:0]);
    }

    /* ---- dense layers: one table per output neuron, the row packed in 128 bits ---- */

#define DENSE_NEURON(J)                                                              \
    action dense_neuron_##J(bit<128> w, bit<32> bias, bit<16> mult, bit<8> shift) {   \
        meta.acc = (int<32>)bias                                                     \
            + W(w, 0)  * S32(meta.x0)  + W(w, 1)  * S32(meta.x1)                     \
            + W(w, 2)  * S32(meta.x2)  + W(w, 3)  * S32(meta.x3)                     \
            + W(w, 4)  * S32(meta.x4)  + W(w, 5)  * S32(meta.x5)                     \
            + W(w, 6)  * S32(meta.x6)  + W(w, 7)  * S32(meta.x7)                     \
            + W(w, 8)  * S32(meta.x8)  + W(w, 9)  * S32(meta.x9)                     \
            + W(w, 10) * S32(meta.x10) + W(w, 11) * S32(meta.x11)                    \
            + W(w, 12) * S32(meta.x12) + W(w, 13) * S32(meta.x13)                    \
            + W(w, 14) * S32(meta.x14) + W(w, 15) * S32(meta.x15);                   \
        meta.mult = mult;                                                            \
        meta.shift = shift;                                                          \
    }                                                                                \
    table dense_##J {                                                                \
        key = {                                                                      \
            hdr.dcia.model_id:      exact @name("model_id");                         \
            hdr.dcia.model_version: exact @name("model_version");                    \
            hdr.dcia.next_layer:    exact @name("layer");                            \
        }                                                                            \
        actions = { dense_neuron_##J; NoAction; }                                    \
        size = 1024;                                                                 \
        default_action = NoAction();                                                 \
    }

    DENSE_NEURON(0)  DENSE_NEURON(1)  DENSE_NEURON(2)  DENSE_NEURON(3)
    DENSE_NEURON(4)  DENSE_NEURON(5)  DENSE_NEURON(6)  DENSE_NEURON(7)
    DENSE_NEURON(8)  DENSE_NEURON(9)  DENSE_NEURON(10) DENSE_NEURON(11)
    DENSE_NEURON(12) DENSE_NEURON(13) DENSE_NEURON(14) DENSE_NEURON(15)

    /* ---- element-wise transform (feature scaling / normalisation) ---- */

#define ELEMENTWISE(i)                                                               \
    meta.acc = W(meta.ew_scales, i) * S32(meta.x##i)                                 \
        + (int<32>)(int<16>)meta.ew_offsets[255 - 16 * (i) : 240 - 16 * (i)];        \
    requantize();                                                                    \
    meta.y##i = meta.yq;

    /* ---- embedding look-up: id -> vector ---- */

    action embed(bit<128> vec) {
        meta.y0  = vec[127:120]; meta.y1  = vec[119:112]; meta.y2  = vec[111:104];
        meta.y3  = vec[103:96];  meta.y4  = vec[95:88];   meta.y5  = vec[87:80];
        meta.y6  = vec[79:72];   meta.y7  = vec[71:64];   meta.y8  = vec[63:56];
        meta.y9  = vec[55:48];   meta.y10 = vec[47:40];   meta.y11 = vec[39:32];
        meta.y12 = vec[31:24];   meta.y13 = vec[23:16];   meta.y14 = vec[15:8];
        meta.y15 = vec[7:0];
    }

    table embeddings {
        key = {
            hdr.dcia.model_id:      exact @name("model_id");
            hdr.dcia.model_version: exact @name("model_version");
            hdr.dcia.next_layer:    exact @name("layer");
            meta.embed_id:          exact @name("embed_id");
        }
        actions = { embed; NoAction; }
        size = 4096;
        default_action = NoAction();
    }

    /* ---- embedding-bag (dcia/arithmetic.py: embedding_bag) ----
     * A table is applied at most once per pass, so the vectors are in one table per token
     * position, bag_0 .. bag_15, each keyed by (model, version, layer, token id) and
     * holding the same vectors: bag_i adds the vector of token i to the sums bs*. */

#define BAG_ADD(j) meta.bs##j = meta.bs##j + W(vec, j);
    action bag_add(bit<128> vec) {
        BAG_ADD(0)  BAG_ADD(1)  BAG_ADD(2)  BAG_ADD(3)  BAG_ADD(4)  BAG_ADD(5)
        BAG_ADD(6)  BAG_ADD(7)  BAG_ADD(8)  BAG_ADD(9)  BAG_ADD(10) BAG_ADD(11)
        BAG_ADD(12) BAG_ADD(13) BAG_ADD(14) BAG_ADD(15)
    }

#define BAG_TABLE(i)                                                                 \
    table bag_##i {                                                                  \
        key = {                                                                      \
            hdr.dcia.model_id:      exact @name("model_id");                         \
            hdr.dcia.model_version: exact @name("model_version");                    \
            hdr.dcia.next_layer:    exact @name("layer");                            \
            meta.x##i:              exact @name("token");                            \
        }                                                                            \
        actions = { bag_add; NoAction; }                                             \
        size = 4096;                                                                 \
        default_action = NoAction();                                                 \
    }

    BAG_TABLE(0)  BAG_TABLE(1)  BAG_TABLE(2)  BAG_TABLE(3)
    BAG_TABLE(4)  BAG_TABLE(5)  BAG_TABLE(6)  BAG_TABLE(7)
    BAG_TABLE(8)  BAG_TABLE(9)  BAG_TABLE(10) BAG_TABLE(11)
    BAG_TABLE(12) BAG_TABLE(13) BAG_TABLE(14) BAG_TABLE(15)

/* token i: padding adds nothing; a token without a vector here leaves the layer to the
 * next node (partial state, or an id outside the vocabulary) */
#define BAG_LOOKUP(i)                                                                \
    if (meta.x##i != BAG_PAD) {                                                      \
        meta.bag_count = meta.bag_count + 1;                                         \
        if (!bag_##i.apply().hit) { meta.incomplete = 1; }                           \
    }

/* pooled element j: the saturated sum, or the mean rounded half up (exact: for sums of
 * at most 16 int8s the reciprocal's error never reaches the next integer); a bag of
 * padding only sums to 0 */
#define BAG_OUT(j)                                                                   \
    if (meta.bag_mode == BAG_MEAN && meta.bag_count != 0) {                          \
        meta.q = ((((int<64>)(meta.bs##j + (int<32>)(bit<32>)meta.bag_count * 128))  \
                   * meta.bag_recip + (64s1 << (BAG_SHIFT - 1))) >> BAG_SHIFT) - 128; \
    } else {                                                                         \
        meta.q = (int<64>)meta.bs##j;                                                \
    }                                                                                \
    meta.y##j = (meta.q > 127) ? 8w0x7F : ((meta.q < -128) ? 8w0x80 : meta.q[7:0]);

    /* ---- fusion (dcia/arithmetic.py: fuse): element-wise max over a group's members ---- */

    action fuse_read_slot() {
        meta.fuse_slot = hdr.dcia.request_id & FUSE_SLOT_MASK;
        fuse_group.read(meta.s_group, meta.fuse_slot);
        fuse_layer.read(meta.s_layer, meta.fuse_slot);
        fuse_members.read(meta.s_members, meta.fuse_slot);
        fuse_released.read(meta.s_released, meta.fuse_slot);
        fuse_deadline.read(meta.s_deadline, meta.fuse_slot);
        fuse_vec.read(meta.s_vec, meta.fuse_slot);
        fuse_origin.read(meta.s_origin, meta.fuse_slot);
    }

/* signed int8 a > b, as unsigned bytes with the sign bit flipped */
#define FUSE_MAX(i)                                                                  \
    meta.y##i = ((meta.x##i ^ 0x80) > (meta.s_vec[127 - 8 * (i) : 120 - 8 * (i)] ^ 0x80)) \
        ? meta.x##i : meta.s_vec[127 - 8 * (i) : 120 - 8 * (i)];

    /* y = max(x, the slot's fusion so far); the new fusion goes back into s_vec */
    action fuse_max() {
        FUSE_MAX(0)  FUSE_MAX(1)  FUSE_MAX(2)  FUSE_MAX(3)
        FUSE_MAX(4)  FUSE_MAX(5)  FUSE_MAX(6)  FUSE_MAX(7)
        FUSE_MAX(8)  FUSE_MAX(9)  FUSE_MAX(10) FUSE_MAX(11)
        FUSE_MAX(12) FUSE_MAX(13) FUSE_MAX(14) FUSE_MAX(15)
    }

    action fuse_pack_y() {
        meta.s_vec = meta.y0 ++ meta.y1 ++ meta.y2 ++ meta.y3 ++ meta.y4 ++ meta.y5
            ++ meta.y6 ++ meta.y7 ++ meta.y8 ++ meta.y9 ++ meta.y10 ++ meta.y11
            ++ meta.y12 ++ meta.y13 ++ meta.y14 ++ meta.y15;
    }

    /* The packet is the first member of its group in this slot. */
    action fuse_store_first() {
        fuse_group.write(meta.fuse_slot, hdr.dcia.request_id);
        fuse_layer.write(meta.fuse_slot,
            (hdr.dcia.model_id ++ hdr.dcia.model_version ++ hdr.dcia.next_layer));
        fuse_members.write(meta.fuse_slot, meta.fuse_bit);
        fuse_released.write(meta.fuse_slot, 0);
        fuse_deadline.write(meta.fuse_slot, std.ingress_global_timestamp + meta.fuse_timeout);
        fuse_vec.write(meta.fuse_slot, meta.x0 ++ meta.x1 ++ meta.x2 ++ meta.x3 ++ meta.x4
            ++ meta.x5 ++ meta.x6 ++ meta.x7 ++ meta.x8 ++ meta.x9 ++ meta.x10 ++ meta.x11
            ++ meta.x12 ++ meta.x13 ++ meta.x14 ++ meta.x15);
        fuse_origin.write(meta.fuse_slot, (hdr.ipv4.srcAddr ++ hdr.ipv4.dstAddr
            ++ hdr.udp.srcPort ++ hdr.dcia.net_layers ++ meta.n_in[7:0] ++ 7w0 ++ meta.more));
        fusion_stats.count(FUSE_STORED);
        meta.fuse_drop = 1;
    }

    /* A further member: its bit and the fusion so far go back into the slot. */
    action fuse_store_member() {
        fuse_members.write(meta.fuse_slot, meta.s_members);
        fuse_vec.write(meta.fuse_slot, meta.s_vec);
        fusion_stats.count(FUSE_STORED);
        meta.fuse_drop = 1;
    }

    /* The slot's group has left (fused or timed out): its later members are duplicates
     * or late; the slot is free for another group. */
    action fuse_mark_released() {
        fuse_members.write(meta.fuse_slot, meta.s_members);
        fuse_released.write(meta.fuse_slot, 1);
    }

    /* The slot's group (s_*) leaves in this packet, whatever it carried: the header of
     * the group's first member, next layer, the fused tensor, FUSED with the bitmap. */
    action fuse_release() {
        meta.fuse_out = 1;
        meta.fuse_drop = 0;
        meta.n_in = hdr.dcia.n_elems;
        meta.n_out = (bit<16>)meta.s_origin[15:8];
        meta.more = meta.s_origin[0:0];
        hdr.ipv4.srcAddr = meta.s_origin[103:72];
        hdr.ipv4.dstAddr = meta.s_origin[71:40];
        hdr.udp.srcPort = meta.s_origin[39:24];
        hdr.dcia.net_layers = meta.s_origin[23:16];
        hdr.dcia.model_id = meta.s_layer[39:24];
        hdr.dcia.model_version = meta.s_layer[23:8];
        hdr.dcia.next_layer = meta.s_layer[7:0];
        hdr.dcia.request_id = meta.s_group;
        hdr.dcia.flags = FLAG_FUSED;
        hdr.dcia.status = 0;
        hdr.dcia.reserved = meta.s_members;
        meta.y0  = meta.s_vec[127:120]; meta.y1  = meta.s_vec[119:112];
        meta.y2  = meta.s_vec[111:104]; meta.y3  = meta.s_vec[103:96];
        meta.y4  = meta.s_vec[95:88];   meta.y5  = meta.s_vec[87:80];
        meta.y6  = meta.s_vec[79:72];   meta.y7  = meta.s_vec[71:64];
        meta.y8  = meta.s_vec[63:56];   meta.y9  = meta.s_vec[55:48];
        meta.y10 = meta.s_vec[47:40];   meta.y11 = meta.s_vec[39:32];
        meta.y12 = meta.s_vec[31:24];   meta.y13 = meta.s_vec[23:16];
        meta.y14 = meta.s_vec[15:8];    meta.y15 = meta.s_vec[7:0];
    }

    /* ---- bookkeeping ---- */

    action mark_malformed() {
        dcia_stats.count(STAT_MALFORMED);
        hdr.udp.checksum = 0;
    }

    action finish_layer() {
        layer_stats.count((bit<32>)hdr.dcia.next_layer);
        dcia_stats.count(STAT_COMPUTED);
        hdr.udp.length_ = hdr.udp.length_ + meta.n_out - meta.n_in;
        hdr.ipv4.totalLen = hdr.ipv4.totalLen + meta.n_out - meta.n_in;
        hdr.udp.checksum = 0;
        hdr.dcia.n_elems = meta.n_out;
        hdr.dcia.next_layer = hdr.dcia.next_layer + 1;
        hdr.dcia.net_layers = hdr.dcia.net_layers + 1;
    }

#define LOAD_INPUT(i)                                                                \
    if (hdr.elems[i].isValid()) { meta.x##i = hdr.elems[i].v; } else { meta.x##i = 0; }

#define STORE_OUTPUT(i)                                                              \
    if (meta.n_out > i) { hdr.elems[i].setValid(); hdr.elems[i].v = meta.y##i; }     \
    else { hdr.elems[i].setInvalid(); }

#define APPLY_NEURON(J)                                                              \
    if (meta.n_out > J) {                                                            \
        if (dense_##J.apply().hit) { requantize(); meta.y##J = meta.yq; }            \
        else { meta.incomplete = 1; }                                                \
    }

    apply {
        if (!hdr.ipv4.isValid()) {
            drop();
            return;
        }
        /* What a router drops, before anything looks further: a header that cannot be
         * right (the total length must cover the header and not exceed what arrived), a
         * wrong checksum, an expired TTL (checked once, not on recirculated passes). */
        bit<16> ip_hdr_bytes = ((bit<16>)hdr.ipv4.ihl) << 2;
        if (hdr.ipv4.version != 4 || hdr.ipv4.ihl < 5 || hdr.ipv4.totalLen < ip_hdr_bytes
                || std.packet_length < (bit<32>)(ETH_HDR_BYTES + hdr.ipv4.totalLen)) {
            drop_counted(DROP_BAD_HEADER);
            return;
        }
        if (std.checksum_error == 1) {
            drop_counted(DROP_BAD_CHECKSUM);
            return;
        }
        if (meta.passes == 0 && hdr.ipv4.ttl <= 1) {
            drop_counted(DROP_TTL_EXPIRED);
            return;
        }
        bool tensor = hdr.udp.isValid() && hdr.udp.dstPort == DCIA_UDP_PORT;

        if (tensor) {
            if (std.parser_error != error.NoError || !hdr.dcia.isValid()
                    || hdr.udp.length_ != hdr.ipv4.totalLen - ip_hdr_bytes
                    || hdr.udp.length_ != UDP_HDR_BYTES + DCIA_HDR_BYTES + hdr.dcia.n_elems) {
                /* Truncated, oversized, bad version or lying about its length (UDP and
                 * IPv4 must both cover exactly the header and the tensor): counted,
                 * flagged when the header is readable, and forwarded for the receiver
                 * to answer with an error. */
                mark_malformed();
                if (hdr.dcia.isValid()) {
                    hdr.dcia.flags = hdr.dcia.flags | FLAG_MALFORMED;
                }
            } else if ((hdr.dcia.flags & FLAGS_NO_COMPUTE) != 0) {
                /* answers, error reports and no-offload packets: ordinary traffic */
            } else if (model_tenants.apply().hit && meta.unauthorised == 1) {
                /* another tenant's model: not computed, not passed on (dropped below) */
                dcia_stats.count(STAT_UNAUTHORISED);
            } else if (layers.apply().hit) {
                bit<8> member = hdr.dcia.reserved >> 4;
                bit<8> size = hdr.dcia.reserved & 0xF;
                bool flush = member == FUSE_FLUSH && hdr.dcia.n_elems == 0;
                if (meta.kind == KIND_FUSION) {
                    meta.fuse_bit = 8w1 << member;
                }
                if (meta.kind == KIND_FUSION
                        && ((hdr.dcia.flags & (FLAG_FUSE | FLAG_FUSED)) != FLAG_FUSE
                            || (!flush && (size != meta.fuse_k || member >= size
                                           || hdr.dcia.request_id == 0
                                           || hdr.dcia.n_elems != meta.n_in)))) {
                    /* not a member of a group this layer can fuse: a plain tensor, a
                     * fused one, or a bad group id (0), member index or group size */
                    mark_malformed();
                    hdr.dcia.flags = hdr.dcia.flags | FLAG_MALFORMED;
                } else if (meta.kind == KIND_FUSION) {
                    LOAD_INPUT(0)  LOAD_INPUT(1)  LOAD_INPUT(2)  LOAD_INPUT(3)
                    LOAD_INPUT(4)  LOAD_INPUT(5)  LOAD_INPUT(6)  LOAD_INPUT(7)
                    LOAD_INPUT(8)  LOAD_INPUT(9)  LOAD_INPUT(10) LOAD_INPUT(11)
                    LOAD_INPUT(12) LOAD_INPUT(13) LOAD_INPUT(14) LOAD_INPUT(15)
                    fuse_read_slot();
                    bool waiting = meta.s_group != 0 && meta.s_released == 0;
                    bool stale = waiting && std.ingress_global_timestamp >= meta.s_deadline;
                    bool mine = meta.s_group == hdr.dcia.request_id && meta.s_layer
                        == (hdr.dcia.model_id ++ hdr.dcia.model_version ++ hdr.dcia.next_layer);
                    if (flush) {
                        if (stale) {
                            fusion_stats.count(FUSE_TIMED_OUT);
                            fuse_mark_released();
                            fuse_release();
                        } else {
                            fusion_stats.count(FUSE_IDLE);
                            meta.fuse_drop = 1;
                        }
                    } else if (mine && (meta.s_members & meta.fuse_bit) != 0) {
                        /* this member is already in: a retransmission */
                        fusion_stats.count(FUSE_DUPLICATE);
                        meta.fuse_drop = 1;
                    } else if (mine && meta.s_released == 1) {
                        /* its group left without it: it goes on unfused */
                        fusion_stats.count(FUSE_LATE);
                    } else if (mine) {
                        fuse_max();
                        fuse_pack_y();
                        meta.s_members = meta.s_members | meta.fuse_bit;
                        if (meta.s_members == (8w1 << meta.fuse_k) - 1) {
                            fusion_stats.count(FUSE_FUSED);
                            fuse_mark_released();
                            fuse_release();
                        } else {
                            fuse_store_member();
                        }
                    } else if (!waiting || stale) {
                        /* the slot is free, or its group timed out: this member takes it,
                         * and the timed-out group leaves in this packet */
                        fuse_store_first();
                        if (stale) {
                            fusion_stats.count(FUSE_TIMED_OUT);
                            fuse_release();
                        }
                    } else {
                        /* another group waits in the slot: this member goes on unfused */
                        fusion_stats.count(FUSE_COLLISION);
                    }
                    if (meta.fuse_out == 1) {
                        STORE_OUTPUT(0)  STORE_OUTPUT(1)  STORE_OUTPUT(2)  STORE_OUTPUT(3)
                        STORE_OUTPUT(4)  STORE_OUTPUT(5)  STORE_OUTPUT(6)  STORE_OUTPUT(7)
                        STORE_OUTPUT(8)  STORE_OUTPUT(9)  STORE_OUTPUT(10) STORE_OUTPUT(11)
                        STORE_OUTPUT(12) STORE_OUTPUT(13) STORE_OUTPUT(14) STORE_OUTPUT(15)
                        finish_layer();
                        if (meta.more == 1 && meta.passes < MAX_PASSES - 1) {
                            meta.recirculate = 1;
                        }
                    }
                } else if (hdr.dcia.n_elems != meta.n_in) {
                    /* the tensor does not have the shape this layer takes */
                    mark_malformed();
                    hdr.dcia.flags = hdr.dcia.flags | FLAG_MALFORMED;
                } else if (meta.color != METER_GREEN) {
                    /* over this layer's rate: the next capable node computes it */
                    dcia_stats.count(STAT_DEFERRED);
                } else {
                    LOAD_INPUT(0)  LOAD_INPUT(1)  LOAD_INPUT(2)  LOAD_INPUT(3)
                    LOAD_INPUT(4)  LOAD_INPUT(5)  LOAD_INPUT(6)  LOAD_INPUT(7)
                    LOAD_INPUT(8)  LOAD_INPUT(9)  LOAD_INPUT(10) LOAD_INPUT(11)
                    LOAD_INPUT(12) LOAD_INPUT(13) LOAD_INPUT(14) LOAD_INPUT(15)
                    meta.incomplete = 0;
                    if (meta.kind == KIND_DENSE) {
                        APPLY_NEURON(0)  APPLY_NEURON(1)  APPLY_NEURON(2)  APPLY_NEURON(3)
                        APPLY_NEURON(4)  APPLY_NEURON(5)  APPLY_NEURON(6)  APPLY_NEURON(7)
                        APPLY_NEURON(8)  APPLY_NEURON(9)  APPLY_NEURON(10) APPLY_NEURON(11)
                        APPLY_NEURON(12) APPLY_NEURON(13) APPLY_NEURON(14) APPLY_NEURON(15)
                    } else if (meta.kind == KIND_ELEMENTWISE) {
                        ELEMENTWISE(0)  ELEMENTWISE(1)  ELEMENTWISE(2)  ELEMENTWISE(3)
                        ELEMENTWISE(4)  ELEMENTWISE(5)  ELEMENTWISE(6)  ELEMENTWISE(7)
                        ELEMENTWISE(8)  ELEMENTWISE(9)  ELEMENTWISE(10) ELEMENTWISE(11)
                        ELEMENTWISE(12) ELEMENTWISE(13) ELEMENTWISE(14) ELEMENTWISE(15)
                    } else if (meta.kind == KIND_EMBEDDING_BAG) {
                        BAG_LOOKUP(0)  BAG_LOOKUP(1)  BAG_LOOKUP(2)  BAG_LOOKUP(3)
                        BAG_LOOKUP(4)  BAG_LOOKUP(5)  BAG_LOOKUP(6)  BAG_LOOKUP(7)
                        BAG_LOOKUP(8)  BAG_LOOKUP(9)  BAG_LOOKUP(10) BAG_LOOKUP(11)
                        BAG_LOOKUP(12) BAG_LOOKUP(13) BAG_LOOKUP(14) BAG_LOOKUP(15)
                        /* ceil(2^24 / count) */
                        if (meta.bag_count == 1)       { meta.bag_recip = 16777216; }
                        else if (meta.bag_count == 2)  { meta.bag_recip = 8388608; }
                        else if (meta.bag_count == 3)  { meta.bag_recip = 5592406; }
                        else if (meta.bag_count == 4)  { meta.bag_recip = 4194304; }
                        else if (meta.bag_count == 5)  { meta.bag_recip = 3355444; }
                        else if (meta.bag_count == 6)  { meta.bag_recip = 2796203; }
                        else if (meta.bag_count == 7)  { meta.bag_recip = 2396746; }
                        else if (meta.bag_count == 8)  { meta.bag_recip = 2097152; }
                        else if (meta.bag_count == 9)  { meta.bag_recip = 1864136; }
                        else if (meta.bag_count == 10) { meta.bag_recip = 1677722; }
                        else if (meta.bag_count == 11) { meta.bag_recip = 1525202; }
                        else if (meta.bag_count == 12) { meta.bag_recip = 1398102; }
                        else if (meta.bag_count == 13) { meta.bag_recip = 1290556; }
                        else if (meta.bag_count == 14) { meta.bag_recip = 1198373; }
                        else if (meta.bag_count == 15) { meta.bag_recip = 1118482; }
                        else                           { meta.bag_recip = 1048576; }
                        BAG_OUT(0)  BAG_OUT(1)  BAG_OUT(2)  BAG_OUT(3)
                        BAG_OUT(4)  BAG_OUT(5)  BAG_OUT(6)  BAG_OUT(7)
                        BAG_OUT(8)  BAG_OUT(9)  BAG_OUT(10) BAG_OUT(11)
                        BAG_OUT(12) BAG_OUT(13) BAG_OUT(14) BAG_OUT(15)
                    } else {
                        meta.embed_id = meta.x0 ++ meta.x1;
                        if (!embeddings.apply().hit) {
                            meta.incomplete = 1;
                        }
                    }
                    if (meta.incomplete == 1) {
                        /* partial state (for example a deployment under way): best effort */
                        dcia_stats.count(STAT_PASSTHROUGH);
                    } else {
                        STORE_OUTPUT(0)  STORE_OUTPUT(1)  STORE_OUTPUT(2)  STORE_OUTPUT(3)
                        STORE_OUTPUT(4)  STORE_OUTPUT(5)  STORE_OUTPUT(6)  STORE_OUTPUT(7)
                        STORE_OUTPUT(8)  STORE_OUTPUT(9)  STORE_OUTPUT(10) STORE_OUTPUT(11)
                        STORE_OUTPUT(12) STORE_OUTPUT(13) STORE_OUTPUT(14) STORE_OUTPUT(15)
                        finish_layer();
                        if (meta.more == 1 && meta.passes < MAX_PASSES - 1) {
                            meta.recirculate = 1;
                        }
                    }
                }
            } else {
                model_versions.apply();
                if (meta.model_state == MODEL_OTHER_VERSION) {
                    dcia_stats.count(STAT_VERSION_MISMATCH);
                } else {
                    dcia_stats.count(STAT_PASSTHROUGH);
                }
            }
        }

        if (meta.unauthorised == 1 || meta.fuse_drop == 1) {
            mark_to_drop(std);
        } else if (meta.recirculate == 1) {
            /* forwarding waits for the last pass; any real port takes it to the egress,
             * where it recirculates instead of leaving */
            std.egress_spec = std.ingress_port;
        } else if (tensor && hdr.dcia.isValid() && (hdr.dcia.flags & FLAGS_NO_COMPUTE) == 0) {
            if (!tensor_steering.apply().hit) {
                ipv4_lpm.apply();
            }
        } else {
            ipv4_lpm.apply();
        }
        if (meta.passes == 0) {
            hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
        }
    }
}

/* -------------------------------------------------------------------- egress -- */

control DciaEgress(inout headers_t hdr, inout metadata_t meta,
                   inout standard_metadata_t std) {
    apply {
        if (meta.unauthorised == 1 || meta.fuse_drop == 1) {
            mark_to_drop(std);
        } else if (meta.recirculate == 1) {
            /* compute the next layer on this switch: the packet re-enters the parser */
            meta.passes = meta.passes + 1;
            recirculate_preserving_field_list(0);
        }
    }
}

control DciaComputeChecksum(inout headers_t hdr, inout metadata_t meta) {
    apply {
        update_checksum(hdr.ipv4.isValid(),
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.totalLen,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.fragOffset,
              hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.srcAddr, hdr.ipv4.dstAddr,
              hdr.ipv4_options.options },
            hdr.ipv4.hdrChecksum, HashAlgorithm.csum16);
    }
}

control DciaDeparser(packet_out pkt, in headers_t hdr) {
    apply {
        pkt.emit(hdr.ethernet);
        pkt.emit(hdr.ipv4);
        pkt.emit(hdr.ipv4_options);
        pkt.emit(hdr.udp);
        pkt.emit(hdr.dcia);
        pkt.emit(hdr.elems);
    }
}

V1Switch(DciaParser(), DciaVerifyChecksum(), DciaIngress(), DciaEgress(),
         DciaComputeChecksum(), DciaDeparser()) main;
