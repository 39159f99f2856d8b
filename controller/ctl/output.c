/* bulkhead-ctl's output, JSON or text, walked from message descriptors so
 * that every operation's result prints the same way. */
#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "output.h"

#define FIELD_PTR(msg, off) ((const char *)(msg) + (off))

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one.
 * Overlong forms and surrogates are not valid. */
static size_t utf8_len(const unsigned char *s)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void ctl_json_string(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t n;

	fputc('"', out);
	while (*s) {
		switch (*s) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*s < 0x20 || *s == 0x7f) {
				fprintf(out, "\\u%04x", *s);
				break;
			}
			n = utf8_len(s);
			if (n == 0) {
				fputs("\\ufffd", out);
				break;
			}
			fwrite(s, 1, n, out);
			s += n;
			continue;
		}
		s++;
	}
	fputc('"', out);
}

/* Strings for people: printable text as is, the rest escaped. */
static void text_string(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t n;

	if (!*s) {
		fputs("\"\"", out);
		return;
	}
	while (*s) {
		if (*s < 0x20 || *s == 0x7f) {
			fprintf(out, "\\x%02x", *s++);
			continue;
		}
		n = utf8_len(s);
		if (n == 0) {
			fprintf(out, "\\x%02x", *s++);
			continue;
		}
		fwrite(s, 1, n, out);
		s += n;
	}
}

static bool field_present(const ProtobufCMessage *msg,
			  const ProtobufCFieldDescriptor *f)
{
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t which;

		memcpy(&which, FIELD_PTR(msg, f->quantifier_offset),
		       sizeof(which));
		return which == f->id;
	}
	if (f->label != PROTOBUF_C_LABEL_REPEATED &&
	    f->type == PROTOBUF_C_TYPE_MESSAGE) {
		const ProtobufCMessage *sub;

		memcpy(&sub, FIELD_PTR(msg, f->offset), sizeof(sub));
		return sub != NULL;
	}
	return true;
}

static size_t type_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

/* protoc makes a map<K, V> a repeated "...Entry" message of key and value. */
static bool is_map(const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *d = f->descriptor;
	size_t len;

	if (f->label != PROTOBUF_C_LABEL_REPEATED ||
	    f->type != PROTOBUF_C_TYPE_MESSAGE || d->n_fields != 2)
		return false;
	len = strlen(d->short_name);
	return len > 5 && strcmp(d->short_name + len - 5, "Entry") == 0 &&
	       strcmp(d->fields[0].name, "key") == 0 &&
	       strcmp(d->fields[1].name, "value") == 0;
}

/* The value name, e.g. "RUNNING"; as a number if the enum lacks it. */
static const char *enum_name(const ProtobufCFieldDescriptor *f, int v,
			     char *buf, size_t len)
{
	const ProtobufCEnumValue *ev =
	    protobuf_c_enum_descriptor_get_value(f->descriptor, v);

	if (ev)
		return ev->name;
	snprintf(buf, len, "%d", v);
	return buf;
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_message(FILE *out, const ProtobufCMessage *msg, int depth);

static void indent(FILE *out, int depth)
{
	fprintf(out, "%*s", depth * 2, "");
}

static void json_value(FILE *out, const ProtobufCFieldDescriptor *f,
		       const void *p, int depth)
{
	char buf[16];
	int32_t i32;
	uint32_t u32;
	int64_t i64;
	uint64_t u64;
	float fl;
	double d;
	protobuf_c_boolean b;
	int e;
	const char *s;
	const ProtobufCBinaryData *bin;
	const ProtobufCMessage *m;
	size_t i;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		memcpy(&i32, p, sizeof(i32));
		fprintf(out, "%" PRId32, i32);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		memcpy(&u32, p, sizeof(u32));
		fprintf(out, "%" PRIu32, u32);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		memcpy(&i64, p, sizeof(i64));
		fprintf(out, "%" PRId64, i64);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		memcpy(&u64, p, sizeof(u64));
		fprintf(out, "%" PRIu64, u64);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		memcpy(&fl, p, sizeof(fl));
		fprintf(out, "%.9g", (double)fl);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		memcpy(&d, p, sizeof(d));
		fprintf(out, "%.17g", d);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		memcpy(&b, p, sizeof(b));
		fputs(b ? "true" : "false", out);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		memcpy(&e, p, sizeof(e));
		ctl_json_string(out, enum_name(f, e, buf, sizeof(buf)));
		break;
	case PROTOBUF_C_TYPE_STRING:
		memcpy(&s, p, sizeof(s));
		ctl_json_string(out, s);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		/* No field of the API is bytes today; hex keeps any future
		 * one readable without an encoder. */
		bin = p;
		fputc('"', out);
		for (i = 0; i < bin->len; i++)
			fprintf(out, "%02x", bin->data[i]);
		fputc('"', out);
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		memcpy(&m, p, sizeof(m));
		json_message(out, m, depth);
		break;
	}
}

static void json_map(FILE *out, const ProtobufCFieldDescriptor *f,
		     const char *arr, size_t n, int depth)
{
	const ProtobufCMessageDescriptor *d = f->descriptor;
	const ProtobufCFieldDescriptor *kf = &d->fields[0], *vf = &d->fields[1];
	const ProtobufCMessage *entry;
	const char *key;
	size_t i;

	fputc('{', out);
	for (i = 0; i < n; i++) {
		memcpy(&entry, arr + i * sizeof(entry), sizeof(entry));
		fputs(i ? ",\n" : "\n", out);
		indent(out, depth + 1);
		/* JSON keys are strings whatever the map's key type. */
		if (kf->type == PROTOBUF_C_TYPE_STRING) {
			memcpy(&key, FIELD_PTR(entry, kf->offset), sizeof(key));
			ctl_json_string(out, key);
		} else {
			fputc('"', out);
			json_value(out, kf, FIELD_PTR(entry, kf->offset),
				   depth + 1);
			fputc('"', out);
		}
		fputs(": ", out);
		json_value(out, vf, FIELD_PTR(entry, vf->offset), depth + 1);
	}
	if (n) {
		fputc('\n', out);
		indent(out, depth);
	}
	fputc('}', out);
}

static void json_message(FILE *out, const ProtobufCMessage *msg, int depth)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	bool first = true;
	unsigned int i;

	fputc('{', out);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *p = FIELD_PTR(msg, f->offset);

		if (!field_present(msg, f))
			continue;
		fputs(first ? "\n" : ",\n", out);
		first = false;
		indent(out, depth + 1);
		ctl_json_string(out, f->name);
		fputs(": ", out);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n, j, sz = type_size(f->type);
			const char *arr;

			memcpy(&n, FIELD_PTR(msg, f->quantifier_offset),
			       sizeof(n));
			memcpy(&arr, p, sizeof(arr));
			if (is_map(f)) {
				json_map(out, f, arr, n, depth + 1);
				continue;
			}
			fputc('[', out);
			for (j = 0; j < n; j++) {
				fputs(j ? ", " : "", out);
				json_value(out, f, arr + j * sz, depth + 1);
			}
			fputc(']', out);
			continue;
		}
		json_value(out, f, p, depth + 1);
	}
	if (!first) {
		fputc('\n', out);
		indent(out, depth);
	}
	fputc('}', out);
}

void ctl_print_json(FILE *out, const ProtobufCMessage *msg)
{
	json_message(out, msg, 0);
	fputc('\n', out);
}

/* ---- text ------------------------------------------------------------------
 */

/* For people, "CONSOLE_MODE_TTY" reads better as "TTY": drop the prefix
 * that protobuf style puts on every value of an enum. */
static void text_enum(FILE *out, const ProtobufCFieldDescriptor *f, int v)
{
	const ProtobufCEnumDescriptor *ed = f->descriptor;
	char prefix[64], buf[16];
	const char *name = enum_name(f, v, buf, sizeof(buf));
	const char *s;
	size_t n = 0;

	for (s = ed->short_name; *s && n + 3 < sizeof(prefix); s++) {
		if (isupper((unsigned char)*s) && s != ed->short_name)
			prefix[n++] = '_';
		prefix[n++] = (char)toupper((unsigned char)*s);
	}
	prefix[n++] = '_';
	prefix[n] = '\0';
	if (strncmp(name, prefix, n) == 0 && name[n])
		name += n;
	fputs(name, out);
}

static void text_message(FILE *out, const ProtobufCMessage *msg, int col,
			 const char *lead);

/* A scalar on the current line. */
static void text_scalar(FILE *out, const ProtobufCFieldDescriptor *f,
			const void *p)
{
	const char *s;
	int e;

	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		memcpy(&s, p, sizeof(s));
		text_string(out, s);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		memcpy(&e, p, sizeof(e));
		text_enum(out, f, e);
		break;
	default:
		json_value(out, f, p, 0);
		break;
	}
}

/*
 * Writes the fields of msg, each on a line indented by col; the first line
 * starts with lead instead ("  - " for an item of a list).
 */
static void text_message(FILE *out, const ProtobufCMessage *msg, int col,
			 const char *lead)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	bool first = true;
	unsigned int i;

#define LINE_START()                                  \
	do {                                          \
		if (first && lead)                    \
			fputs(lead, out);             \
		else                                  \
			fprintf(out, "%*s", col, ""); \
		first = false;                        \
	} while (0)

	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *p = FIELD_PTR(msg, f->offset);
		const ProtobufCMessage *m;
		const char *arr;
		size_t n, j;

		if (!field_present(msg, f))
			continue;
		LINE_START();
		fprintf(out, "%s:", f->name);
		if (f->label != PROTOBUF_C_LABEL_REPEATED) {
			if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
				fputc('\n', out);
				memcpy(&m, p, sizeof(m));
				text_message(out, m, col + 2, NULL);
				continue;
			}
			fputc(' ', out);
			text_scalar(out, f, p);
			fputc('\n', out);
			continue;
		}
		memcpy(&n, FIELD_PTR(msg, f->quantifier_offset), sizeof(n));
		memcpy(&arr, p, sizeof(arr));
		if (n == 0) {
			fputs(" (none)\n", out);
			continue;
		}
		if (is_map(f)) {
			const ProtobufCMessageDescriptor *ed = f->descriptor;

			fputc('\n', out);
			for (j = 0; j < n; j++) {
				memcpy(&m, arr + j * sizeof(m), sizeof(m));
				fprintf(out, "%*s", col + 2, "");
				text_scalar(out, &ed->fields[0],
					    FIELD_PTR(m, ed->fields[0].offset));
				fputc(':', out);
				if (ed->fields[1].type ==
				    PROTOBUF_C_TYPE_MESSAGE) {
					const ProtobufCMessage *v;

					fputc('\n', out);
					memcpy(
					    &v,
					    FIELD_PTR(m, ed->fields[1].offset),
					    sizeof(v));
					if (v)
						text_message(out, v, col + 4,
							     NULL);
					continue;
				}
				fputc(' ', out);
				text_scalar(out, &ed->fields[1],
					    FIELD_PTR(m, ed->fields[1].offset));
				fputc('\n', out);
			}
			continue;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			char item[64];

			fputc('\n', out);
			snprintf(item, sizeof(item), "%*s- ", col + 2, "");
			for (j = 0; j < n; j++) {
				memcpy(&m, arr + j * sizeof(m), sizeof(m));
				text_message(out, m, col + 4, item);
			}
			continue;
		}
		fputc(' ', out);
		for (j = 0; j < n; j++) {
			fputs(j ? ", " : "", out);
			text_scalar(out, f, arr + j * type_size(f->type));
		}
		fputc('\n', out);
	}
	/* An item with no fields still shows that it is there. */
	if (first && lead)
		fprintf(out, "%s{}\n", lead);
#undef LINE_START
}

void ctl_print_text(FILE *out, const ProtobufCMessage *msg)
{
	text_message(out, msg, 0, NULL);
}

const ProtobufCMessage *ctl_unwrap(const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	const ProtobufCMessage *inner;

	if (d->n_fields != 1 || d->fields[0].type != PROTOBUF_C_TYPE_MESSAGE ||
	    d->fields[0].label == PROTOBUF_C_LABEL_REPEATED)
		return msg;
	memcpy(&inner, FIELD_PTR(msg, d->fields[0].offset), sizeof(inner));
	return inner;
}
