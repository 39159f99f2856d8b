/* bulkhead-ctl's output: any protobuf-c message as JSON or as indented
 * "name: value" lines, driven by the message's descriptor. */
#ifndef BH_CTL_OUTPUT_H
#define BH_CTL_OUTPUT_H

#include <stdio.h>
#include <protobuf-c/protobuf-c.h>

/*
 * Writes msg as one JSON object and a newline. Field names are those of
 * api.proto; every field is written, scalars with their default too, except
 * unset sub-messages and oneof members; enums as their names; maps as
 * objects; 64-bit integers as numbers. Strings are escaped, and bytes that
 * are not UTF-8 become U+FFFD.
 */
void ctl_print_json(FILE *out, const ProtobufCMessage *msg);

/* Writes a JSON string (with its quotes) for s. */
void ctl_json_string(FILE *out, const char *s);

/*
 * Writes msg for people: "name: value" lines, sub-messages indented under
 * their name, repeated scalars on one line, repeated messages as "- "
 * items. Control characters in strings are shown escaped, so that a value
 * cannot play tricks with the terminal.
 */
void ctl_print_text(FILE *out, const ProtobufCMessage *msg);

/*
 * The message to show for a result: the result itself, or the one message
 * it wraps when that is its only field (InfoResponse.info, the device of
 * AddDiskResponse). NULL if the wrapped message is unset.
 */
const ProtobufCMessage *ctl_unwrap(const ProtobufCMessage *msg);

#endif
