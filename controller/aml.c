/* aml: encodes the few AML terms and resource descriptors the DSDT needs. */
#include "aml.h"

#include <errno.h>
#include <string.h>

/* Opcodes and prefixes, ACPI 6.x section 20.2. */
#define AML_ZERO_OP	     0x00
#define AML_ONE_OP	     0x01
#define AML_NAME_OP	     0x08
#define AML_BYTE_PREFIX	     0x0a
#define AML_WORD_PREFIX	     0x0b
#define AML_DWORD_PREFIX     0x0c
#define AML_STRING_PREFIX    0x0d
#define AML_QWORD_PREFIX     0x0e
#define AML_SCOPE_OP	     0x10
#define AML_METHOD_OP	     0x14
#define AML_NOTIFY_OP	     0x86
#define AML_BUFFER_OP	     0x11
#define AML_PACKAGE_OP	     0x12
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME	     0x2f
#define AML_EXT_OP_PREFIX    0x5b
#define AML_DEVICE_OP	     0x82 /* after AML_EXT_OP_PREFIX */
#define AML_MUTEX_OP	     0x01 /* after AML_EXT_OP_PREFIX */
#define AML_ACQUIRE_OP	     0x23 /* after AML_EXT_OP_PREFIX */
#define AML_RELEASE_OP	     0x27 /* after AML_EXT_OP_PREFIX */
#define AML_OPREGION_OP	     0x80 /* after AML_EXT_OP_PREFIX */
#define AML_FIELD_OP	     0x81 /* after AML_EXT_OP_PREFIX */
#define AML_IF_OP	     0xa0
#define AML_LOCAL0_OP	     0x60
#define AML_ARG0_OP	     0x68
#define AML_REGION_MEMORY    0x00
#define AML_SYNC_LEVEL_MAX   15
#define AML_ROOT_CHAR	     '\\'
#define AML_PARENT_PREFIX    '^'
#define AML_NULL_NAME	     0x00

/* Resource descriptor tags, ACPI 6.x section 6.4. */
#define RES_IRQ_NOFLAGS	   0x22 /* small item 0x04, length 2 */
#define RES_IO		   0x47 /* small item 0x08, length 7 */
#define RES_END_TAG	   0x79 /* small item 0x0f, length 1 */
#define RES_DWORD_ADDR	   0x87
#define RES_WORD_ADDR	   0x88
#define RES_QWORD_ADDR	   0x8a
#define RES_EXT_IRQ	   0x89 /* large item 0x09 */
#define RES_MEM32_FIXED	   0x86 /* large item 0x06 */
#define RES_IRQ_CONSUMER   (1u << 0)
#define RES_IRQ_EDGE	   (1u << 1)
#define RES_IRQ_ACTIVE_LOW (1u << 2)

#define RES_TYPE_MEMORY 0
#define RES_TYPE_IO	1
#define RES_TYPE_BUS	2

/*
 * General flags of the address space descriptors: a bridge produces the
 * window (bit 0 clear) at a fixed place (_MIF, _MAF), positive decode.
 */
#define RES_GEN_MIN_FIXED (1u << 2)
#define RES_GEN_MAX_FIXED (1u << 3)
#define RES_IO_ENTIRE	  0x03 /* _RNG: ISA and non-ISA ports */

#define NAMESEG_LEN 4
#define INT_MAX_LEN 9 /* prefix and a QWord */

static int fail(struct aml_buf *b, int err)
{
	if (b->err == 0)
		b->err = err;
	return b->err;
}

void aml_buf_init(struct aml_buf *b, uint8_t *data, size_t cap)
{
	b->data = data;
	b->cap = data ? cap : 0;
	b->len = 0;
	b->err = 0;
}

int aml_bytes(struct aml_buf *b, const void *p, size_t n)
{
	if (b->err)
		return b->err;
	if (n > b->cap - b->len)
		return fail(b, -ENOSPC);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static int byte(struct aml_buf *b, uint8_t v)
{
	return aml_bytes(b, &v, 1);
}

static void le(uint8_t *out, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

/* Inserts n bytes at offset at, moving what follows. */
static int insert(struct aml_buf *b, size_t at, const uint8_t *p, size_t n)
{
	if (b->err)
		return b->err;
	if (at > b->len)
		return fail(b, -EINVAL);
	if (n > b->cap - b->len)
		return fail(b, -ENOSPC);
	memmove(b->data + at + n, b->data + at, b->len - at);
	memcpy(b->data + at, p, n);
	b->len += n;
	return 0;
}

int aml_pkglen_encode(size_t body_len, uint8_t out[4])
{
	/* A one-byte PkgLength holds 6 bits; each further byte adds 8. */
	static const size_t max[4] = { 0x3f, 0xfff, 0xfffff, 0xfffffff };

	for (size_t n = 1; n <= 4; n++) {
		size_t total;

		if (body_len > max[n - 1] - n)
			continue;
		total = body_len + n;
		if (n == 1) {
			out[0] = (uint8_t)total;
			return 1;
		}
		out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
		for (size_t i = 1; i < n; i++)
			out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
		return (int)n;
	}
	return -EINVAL;
}

static bool lead_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return lead_name_char(c) || (c >= '0' && c <= '9');
}

/* Counts the segments of a path without prefixes; -EINVAL if malformed. */
static int count_segments(const char *p)
{
	int nseg = 0;

	if (*p == '\0')
		return 0;
	for (;;) {
		size_t n = 0;

		if (!lead_name_char(p[0]))
			return -EINVAL;
		while (name_char(p[n]))
			n++;
		if (n > NAMESEG_LEN || (p[n] != '.' && p[n] != '\0'))
			return -EINVAL;
		if (++nseg > 255)
			return -EINVAL;
		if (p[n] == '\0')
			return nseg;
		p += n + 1;
	}
}

static int nameseg(struct aml_buf *b, const char **pp)
{
	char seg[NAMESEG_LEN] = { '_', '_', '_', '_' };
	const char *p = *pp;
	size_t n = 0;

	while (name_char(p[n])) {
		seg[n] = p[n];
		n++;
	}
	*pp = p[n] == '.' ? p + n + 1 : p + n;
	return aml_bytes(b, seg, sizeof(seg));
}

int aml_namestring(struct aml_buf *b, const char *path)
{
	const char *p = path;
	int nseg;

	if (b->err)
		return b->err;
	if (!path)
		return fail(b, -EINVAL);
	if (*p == AML_ROOT_CHAR)
		p++;
	else
		while (*p == AML_PARENT_PREFIX)
			p++;
	nseg = count_segments(p);
	if (nseg < 0)
		return fail(b, nseg);

	aml_bytes(b, path, (size_t)(p - path));
	if (nseg == 0)
		return byte(b, AML_NULL_NAME);
	if (nseg == 2)
		byte(b, AML_DUAL_NAME_PREFIX);
	else if (nseg > 2) {
		byte(b, AML_MULTI_NAME);
		byte(b, (uint8_t)nseg);
	}
	for (int i = 0; i < nseg; i++)
		nameseg(b, &p);
	return b->err;
}

int aml_name(struct aml_buf *b, const char *path)
{
	byte(b, AML_NAME_OP);
	return aml_namestring(b, path);
}

static size_t int_encode(uint64_t v, uint8_t out[INT_MAX_LEN])
{
	size_t n;

	if (v <= 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (v <= UINT8_MAX) {
		out[0] = AML_BYTE_PREFIX;
		n = 1;
	} else if (v <= UINT16_MAX) {
		out[0] = AML_WORD_PREFIX;
		n = 2;
	} else if (v <= UINT32_MAX) {
		out[0] = AML_DWORD_PREFIX;
		n = 4;
	} else {
		out[0] = AML_QWORD_PREFIX;
		n = 8;
	}
	le(out + 1, v, n);
	return n + 1;
}

int aml_integer(struct aml_buf *b, uint64_t v)
{
	uint8_t enc[INT_MAX_LEN];

	return aml_bytes(b, enc, int_encode(v, enc));
}

int aml_string(struct aml_buf *b, const char *s)
{
	if (b->err)
		return b->err;
	if (!s)
		return fail(b, -EINVAL);
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p > 0x7f)
			return fail(b, -EINVAL);
	byte(b, AML_STRING_PREFIX);
	aml_bytes(b, s, strlen(s) + 1);
	return b->err;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int aml_eisaid_value(const char *id, uint32_t *out)
{
	uint32_t v = 0;

	if (!id || strlen(id) != 7)
		return -EINVAL;
	/* Three letters of five bits each ('A' is 1), then 16 bits of hex. */
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return -EINVAL;
		v |= (uint32_t)(id[i] - '@') << (26 - 5 * i);
	}
	for (int i = 3; i < 7; i++) {
		int h = hexval(id[i]);

		if (h < 0)
			return -EINVAL;
		v |= (uint32_t)h << (4 * (6 - i));
	}
	/* The compressed id is stored big-endian in the little-endian DWord. */
	*out =
	    (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
	return 0;
}

int aml_eisaid(struct aml_buf *b, const char *id)
{
	uint8_t enc[5] = { AML_DWORD_PREFIX };
	uint32_t v;
	int r;

	if (b->err)
		return b->err;
	r = aml_eisaid_value(id, &v);
	if (r < 0)
		return fail(b, r);
	le(enc + 1, v, 4);
	return aml_bytes(b, enc, sizeof(enc));
}

int aml_scope(struct aml_buf *b, const char *path, aml_mark *m)
{
	byte(b, AML_SCOPE_OP);
	*m = b->len;
	return aml_namestring(b, path);
}

int aml_device(struct aml_buf *b, const char *path, aml_mark *m)
{
	byte(b, AML_EXT_OP_PREFIX);
	byte(b, AML_DEVICE_OP);
	*m = b->len;
	return aml_namestring(b, path);
}

int aml_method(struct aml_buf *b, const char *path, unsigned int nargs,
	       aml_mark *m)
{
	byte(b, AML_METHOD_OP);
	*m = b->len;
	if (nargs > 7)
		return fail(b, -EINVAL);
	aml_namestring(b, path);
	/* Not serialized, sync level 0. */
	return byte(b, (uint8_t)nargs);
}

int aml_notify(struct aml_buf *b, const char *path, uint64_t value)
{
	byte(b, AML_NOTIFY_OP);
	aml_namestring(b, path);
	return aml_integer(b, value);
}

int aml_op(struct aml_buf *b, enum aml_op op)
{
	return byte(b, (uint8_t)op);
}

int aml_no_target(struct aml_buf *b)
{
	return byte(b, AML_NULL_NAME);
}

int aml_arg(struct aml_buf *b, unsigned int n)
{
	if (n > 6)
		return fail(b, -EINVAL);
	return byte(b, (uint8_t)(AML_ARG0_OP + n));
}

int aml_local(struct aml_buf *b, unsigned int n)
{
	if (n > 7)
		return fail(b, -EINVAL);
	return byte(b, (uint8_t)(AML_LOCAL0_OP + n));
}

int aml_if(struct aml_buf *b, aml_mark *m)
{
	byte(b, AML_IF_OP);
	*m = b->len;
	return b->err;
}

int aml_call(struct aml_buf *b, const char *path)
{
	return aml_namestring(b, path);
}

int aml_opregion_memory(struct aml_buf *b, const char *name, uint64_t base,
			uint64_t len)
{
	byte(b, AML_EXT_OP_PREFIX);
	byte(b, AML_OPREGION_OP);
	aml_namestring(b, name);
	byte(b, AML_REGION_MEMORY);
	aml_integer(b, base);
	return aml_integer(b, len);
}

/*
 * The width of a field unit: a PkgLength-style number of bits that, unlike
 * a PkgLength, does not count its own bytes.
 */
static int field_bits(struct aml_buf *b, unsigned int bits)
{
	uint8_t out[4];

	if (bits == 0 || bits > AML_PKGLEN_MAX)
		return fail(b, -EINVAL);
	if (bits <= 0x3f)
		return byte(b, (uint8_t)bits);
	out[0] = (uint8_t)(bits & 0x0f);
	if (bits <= 0xfff) {
		out[0] |= 1u << 6;
		out[1] = (uint8_t)(bits >> 4);
		return aml_bytes(b, out, 2);
	}
	if (bits <= 0xfffff) {
		out[0] |= 2u << 6;
		out[1] = (uint8_t)(bits >> 4);
		out[2] = (uint8_t)(bits >> 12);
		return aml_bytes(b, out, 3);
	}
	out[0] |= 3u << 6;
	out[1] = (uint8_t)(bits >> 4);
	out[2] = (uint8_t)(bits >> 12);
	out[3] = (uint8_t)(bits >> 20);
	return aml_bytes(b, out, 4);
}

int aml_field(struct aml_buf *b, const char *region, uint8_t flags,
	      const struct aml_field_unit *units, size_t n)
{
	aml_mark m;

	byte(b, AML_EXT_OP_PREFIX);
	byte(b, AML_FIELD_OP);
	m = b->len;
	aml_namestring(b, region);
	byte(b, flags);
	for (size_t i = 0; i < n; i++) {
		const char *p = units[i].name;

		if (!p) {
			byte(b, AML_NULL_NAME); /* ReservedField */
		} else {
			/* A NameSeg, never a path. */
			if (count_segments(p) != 1)
				return fail(b, -EINVAL);
			nameseg(b, &p);
		}
		field_bits(b, units[i].bits);
	}
	return aml_end(b, m);
}

int aml_mutex(struct aml_buf *b, const char *name, unsigned int sync_level)
{
	byte(b, AML_EXT_OP_PREFIX);
	byte(b, AML_MUTEX_OP);
	aml_namestring(b, name);
	if (sync_level > AML_SYNC_LEVEL_MAX)
		return fail(b, -EINVAL);
	return byte(b, (uint8_t)sync_level);
}

int aml_acquire(struct aml_buf *b, const char *name, uint16_t timeout_ms)
{
	uint8_t t[2];

	byte(b, AML_EXT_OP_PREFIX);
	byte(b, AML_ACQUIRE_OP);
	aml_namestring(b, name);
	le(t, timeout_ms, 2);
	return aml_bytes(b, t, 2);
}

int aml_release(struct aml_buf *b, const char *name)
{
	byte(b, AML_EXT_OP_PREFIX);
	byte(b, AML_RELEASE_OP);
	return aml_namestring(b, name);
}

int aml_package(struct aml_buf *b, unsigned int nelem, aml_mark *m)
{
	byte(b, AML_PACKAGE_OP);
	*m = b->len;
	/* More than 255 elements would need VarPackage. */
	if (nelem > UINT8_MAX)
		return fail(b, -EINVAL);
	return byte(b, (uint8_t)nelem);
}

int aml_end(struct aml_buf *b, aml_mark m)
{
	uint8_t pl[4];
	int n;

	if (b->err)
		return b->err;
	if (m > b->len)
		return fail(b, -EINVAL);
	n = aml_pkglen_encode(b->len - m, pl);
	if (n < 0)
		return fail(b, n);
	return insert(b, m, pl, (size_t)n);
}

int aml_buffer(struct aml_buf *b, aml_mark *m)
{
	byte(b, AML_BUFFER_OP);
	*m = b->len;
	return b->err;
}

int aml_buffer_end(struct aml_buf *b, aml_mark m)
{
	uint8_t pre[4 + INT_MAX_LEN];
	size_t isz;
	int n;

	if (b->err)
		return b->err;
	if (m > b->len)
		return fail(b, -EINVAL);
	/* PkgLength covers the BufferSize term as well as the bytes. */
	isz = int_encode(b->len - m, pre + 4);
	n = aml_pkglen_encode(b->len - m + isz, pre);
	if (n < 0)
		return fail(b, n);
	memmove(pre + n, pre + 4, isz);
	return insert(b, m, pre, (size_t)n + isz);
}

int aml_restemplate(struct aml_buf *b, aml_mark *m)
{
	return aml_buffer(b, m);
}

int aml_restemplate_end(struct aml_buf *b, aml_mark m)
{
	uint8_t sum = 0;

	byte(b, RES_END_TAG);
	if (b->err)
		return b->err;
	if (m > b->len)
		return fail(b, -EINVAL);
	for (size_t i = m; i < b->len; i++)
		sum = (uint8_t)(sum + b->data[i]);
	byte(b, (uint8_t)-sum);
	return aml_buffer_end(b, m);
}

int aml_io(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align,
	   uint8_t len)
{
	uint8_t d[8] = { RES_IO, 0x01 /* Decode16 */ };

	le(d + 2, min, 2);
	le(d + 4, max, 2);
	d[6] = align;
	d[7] = len;
	return aml_bytes(b, d, sizeof(d));
}

int aml_irq_noflags(struct aml_buf *b, unsigned int irq)
{
	uint8_t d[3] = { RES_IRQ_NOFLAGS };

	if (irq > 15)
		return fail(b, -EINVAL);
	le(d + 1, 1u << irq, 2);
	return aml_bytes(b, d, sizeof(d));
}

int aml_interrupt(struct aml_buf *b, bool edge, bool active_low, uint32_t gsi)
{
	uint8_t d[9] = { RES_EXT_IRQ };

	le(d + 1, 6, 2); /* flags, count, one GSI */
	d[3] = RES_IRQ_CONSUMER | (edge ? RES_IRQ_EDGE : 0) |
	       (active_low ? RES_IRQ_ACTIVE_LOW : 0);
	d[4] = 1;
	le(d + 5, gsi, 4);
	return aml_bytes(b, d, sizeof(d));
}

int aml_memory32_fixed(struct aml_buf *b, bool rw, uint32_t base, uint32_t len)
{
	uint8_t d[12] = { RES_MEM32_FIXED };

	le(d + 1, 9, 2);
	d[3] = rw ? 1 : 0;
	le(d + 4, base, 4);
	le(d + 8, len, 4);
	return aml_bytes(b, d, sizeof(d));
}

/*
 * Word, DWord and QWord address space descriptors share one layout with
 * fields of width w: type, flags, then _GRA, _MIN, _MAX, _TRA, _LEN.
 */
static int address_space(struct aml_buf *b, uint8_t tag, size_t w, uint8_t type,
			 uint8_t type_flags, uint64_t min, uint64_t max)
{
	uint8_t d[3 + 3 + 5 * 8];
	uint64_t lim = w == 8 ? UINT64_MAX : (1ULL << (8 * w)) - 1;
	size_t len = 3 + 3 + 5 * w;

	if (max < min || min > lim || max > lim || max - min >= lim)
		return fail(b, -EINVAL);
	d[0] = tag;
	le(d + 1, len - 3, 2);
	d[3] = type;
	d[4] = RES_GEN_MIN_FIXED | RES_GEN_MAX_FIXED;
	d[5] = type_flags;
	le(d + 6, 0, w);
	le(d + 6 + w, min, w);
	le(d + 6 + 2 * w, max, w);
	le(d + 6 + 3 * w, 0, w);
	le(d + 6 + 4 * w, max - min + 1, w);
	return aml_bytes(b, d, len);
}

int aml_word_bus_number(struct aml_buf *b, uint16_t min, uint16_t max)
{
	return address_space(b, RES_WORD_ADDR, 2, RES_TYPE_BUS, 0, min, max);
}

int aml_word_io(struct aml_buf *b, uint16_t min, uint16_t max)
{
	return address_space(b, RES_WORD_ADDR, 2, RES_TYPE_IO, RES_IO_ENTIRE,
			     min, max);
}

static uint8_t mem_flags(enum aml_mem_cache cache, bool rw)
{
	return (uint8_t)(((unsigned int)cache & 3) << 1 | (rw ? 1 : 0));
}

int aml_dword_memory(struct aml_buf *b, enum aml_mem_cache cache, bool rw,
		     uint32_t min, uint32_t max)
{
	return address_space(b, RES_DWORD_ADDR, 4, RES_TYPE_MEMORY,
			     mem_flags(cache, rw), min, max);
}

int aml_qword_memory(struct aml_buf *b, enum aml_mem_cache cache, bool rw,
		     uint64_t min, uint64_t max)
{
	return address_space(b, RES_QWORD_ADDR, 8, RES_TYPE_MEMORY,
			     mem_flags(cache, rw), min, max);
}
