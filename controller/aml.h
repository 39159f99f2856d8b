/* aml: a small encoder of ACPI Machine Language into a caller's buffer. */
#ifndef BH_CONTROLLER_AML_H
#define BH_CONTROLLER_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Output buffer. Every function appends to it and returns 0 or -errno; the
 * first error also sticks in err and makes every later call a no-op that
 * returns it, so a caller may emit a whole block and check err once.
 */
struct aml_buf {
	uint8_t *data;
	size_t cap;
	size_t len;
	int err;
};

/*
 * Opened constructs (Scope, Device, Package, Buffer) remember where their
 * PkgLength goes; it is inserted when they are closed, in its shortest form.
 */
typedef size_t aml_mark;

/* Largest PkgLength value: 28 bits. */
#define AML_PKGLEN_MAX 0x0fffffffu

/* Memory cacheability of an address space descriptor (_MEM). */
enum aml_mem_cache {
	AML_MEM_NONCACHEABLE = 0,
	AML_MEM_CACHEABLE = 1,
	AML_MEM_WRITE_COMBINING = 2,
	AML_MEM_PREFETCHABLE = 3,
};

void aml_buf_init(struct aml_buf *b, uint8_t *data, size_t cap);

/*
 * Encodes the PkgLength for a construct whose body (everything after the
 * PkgLength) is body_len bytes; the encoded value counts the PkgLength bytes
 * too. Writes 1-4 bytes to out and returns their number, or -EINVAL if the
 * total does not fit in 28 bits.
 */
int aml_pkglen_encode(size_t body_len, uint8_t out[4]);

/* Raw bytes, for what the encoder has no helper for. */
int aml_bytes(struct aml_buf *b, const void *p, size_t n);

/*
 * A NameString: "\\_SB.PCI0", "^FOO", "_HID". Segments of 1-4 characters
 * (A-Z, 0-9, _, not starting with a digit) are padded with '_'. -EINVAL for
 * anything else.
 */
int aml_namestring(struct aml_buf *b, const char *path);

/* Name(path, ...): the next object appended is the value. */
int aml_name(struct aml_buf *b, const char *path);

/* Integer in its shortest form (Zero, One, Byte, Word, DWord, QWord). */
int aml_integer(struct aml_buf *b, uint64_t v);

/* String of ASCII characters 0x01-0x7f; -EINVAL for any other. */
int aml_string(struct aml_buf *b, const char *s);

/* EISAID("PNP0A08"): three capitals and four hex digits, as a DWord. */
int aml_eisaid(struct aml_buf *b, const char *id);
int aml_eisaid_value(const char *id, uint32_t *out);

/* Scope(path) { ... } and Device(path) { ... }; close with aml_end. */
int aml_scope(struct aml_buf *b, const char *path, aml_mark *m);
int aml_device(struct aml_buf *b, const char *path, aml_mark *m);
/* Method(path, nargs) { ... } (not serialized); close with aml_end. */
int aml_method(struct aml_buf *b, const char *path, unsigned int nargs,
	       aml_mark *m);
/* Notify(path, value) */
int aml_notify(struct aml_buf *b, const char *path, uint64_t value);
/*
 * Operators whose operands the caller appends after them, in the order of
 * ACPI 6.x 20.2.5: Store(source, destination), And(a, b, target),
 * ShiftLeft(value, count, target), LEqual(a, b), Notify(object, value).
 * An operator's result needs a target: aml_no_target() when it is unused.
 */
enum aml_op {
	AML_OP_STORE = 0x70,
	AML_OP_SHIFT_LEFT = 0x79,
	AML_OP_AND = 0x7b,
	AML_OP_NOTIFY = 0x86,
	AML_OP_LEQUAL = 0x93,
};
int aml_op(struct aml_buf *b, enum aml_op op);
int aml_no_target(struct aml_buf *b);
/* Arg0-Arg6 and Local0-Local7 as operands; -EINVAL beyond. */
int aml_arg(struct aml_buf *b, unsigned int n);
int aml_local(struct aml_buf *b, unsigned int n);
/* If(predicate) { ... }: the caller appends the predicate, then the body;
 * close with aml_end. */
int aml_if(struct aml_buf *b, aml_mark *m);
/* A method call: the path; the caller appends as many arguments as the
 * method takes. */
int aml_call(struct aml_buf *b, const char *path);

/* OperationRegion(name, SystemMemory, base, len) */
int aml_opregion_memory(struct aml_buf *b, const char *name, uint64_t base,
			uint64_t len);
/* Field access types and update rules (FieldFlags, 19.6.48). */
#define AML_FIELD_DWORD_ACC	 0x03
#define AML_FIELD_WRITE_AS_ZEROS 0x40
/* One unit of a Field: name NULL for bits skipped (Offset()). */
struct aml_field_unit {
	const char *name; /* a single NameSeg */
	unsigned int bits;
};
/* Field(region, flags) { units }, NoLock. */
int aml_field(struct aml_buf *b, const char *region, uint8_t flags,
	      const struct aml_field_unit *units, size_t n);
/* Mutex(name, sync_level), Acquire(name, timeout_ms), Release(name). */
int aml_mutex(struct aml_buf *b, const char *name, unsigned int sync_level);
int aml_acquire(struct aml_buf *b, const char *name, uint16_t timeout_ms);
int aml_release(struct aml_buf *b, const char *name);

/* Package(nelem) { ... }; the caller appends nelem objects. */
int aml_package(struct aml_buf *b, unsigned int nelem, aml_mark *m);
int aml_end(struct aml_buf *b, aml_mark m);

/* Buffer() { ... }: the BufferSize is inserted by aml_buffer_end. */
int aml_buffer(struct aml_buf *b, aml_mark *m);
int aml_buffer_end(struct aml_buf *b, aml_mark m);

/*
 * ResourceTemplate() { ... }: a Buffer of resource descriptors closed by
 * an End Tag whose checksum makes the descriptors sum to zero.
 */
int aml_restemplate(struct aml_buf *b, aml_mark *m);
int aml_restemplate_end(struct aml_buf *b, aml_mark m);

/* Resource descriptors, for use inside a ResourceTemplate. */
/* IO(Decode16, min, max, align, len) */
int aml_io(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align,
	   uint8_t len);
/* IRQNoFlags() { irq }, irq 0-15 */
int aml_irq_noflags(struct aml_buf *b, unsigned int irq);
/* Interrupt(ResourceConsumer, Edge|Level, ActiveHigh|ActiveLow, Exclusive)
 * { gsi } */
int aml_interrupt(struct aml_buf *b, bool edge, bool active_low, uint32_t gsi);
/* Memory32Fixed(ReadWrite or ReadOnly, base, len): a range consumed. */
int aml_memory32_fixed(struct aml_buf *b, bool rw, uint32_t base, uint32_t len);
/*
 * Address space descriptors of a producer (a bridge), fixed minimum and
 * maximum, positive decode, granularity and translation 0, length
 * max - min + 1. -EINVAL if max < min or the length overflows the field.
 */
int aml_word_bus_number(struct aml_buf *b, uint16_t min, uint16_t max);
/* WordIO(..., EntireRange) */
int aml_word_io(struct aml_buf *b, uint16_t min, uint16_t max);
int aml_dword_memory(struct aml_buf *b, enum aml_mem_cache cache, bool rw,
		     uint32_t min, uint32_t max);
int aml_qword_memory(struct aml_buf *b, enum aml_mem_cache cache, bool rw,
		     uint64_t min, uint64_t max);

#endif
