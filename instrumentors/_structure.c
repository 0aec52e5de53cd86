/*
 * _structure: the LangChain instrumentor's content-off reads, in C.
 *
 * With content recording off (the default), every model call turns its whole input history and its output into
 * structure-only `gen_ai.input.messages` / `gen_ai.output.messages` JSON (roles, part types, tool call ids and
 * names), and reads the response's id, model, finish reasons and token usage. In Python
 * (`_langchain_messages.structure_json` / `output_structure_json`, `langchain._read_response`) that costs ~5k
 * instructions a message, because each dict lookup is ~280 and each call ~1.5k; it was half of the handler's own
 * cost per span. This module does the same reads from the objects' `__dict__` with the C API.
 *
 * The Python functions stay the reference and the fallback. The C code gives their results exactly
 * (tests/instrumentors/test_structure_c.py checks that on generated messages and responses) by taking its fast
 * path only for shapes it reads completely, and handing everything else back:
 *   - a message without a `__dict__`, with a name, of an unknown type, with non-string content, or with tool calls
 *     that are not a list or tuple of dicts goes to `slow_message(msg)` / `slow_output(msg, finish_reason)`;
 *   - a string value with anything but printable ASCII other than `"` and `\` (non-ASCII text, quotes, control
 *     characters), and any value that is not a string or None, goes to `json_string(value)`;
 *   - a response whose fields are not dicts and lists (or holds a text LLM's generation) makes `read_response`
 *     return None, and the caller runs the Python function.
 * `setup()` and `setup_response()` hand over those callables, the role tables and the attribute keys once, at
 * import of `_langchain_messages` and `langchain`.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

/* Set by setup(): the role of each LangChain message type, the prebuilt JSON of a plain message per role (with
 * and without text), the message types that are assistant messages, and the Python fallbacks. */
static PyObject *role_by_type, *plain_with_text, *plain_empty, *assistant_types;
static PyObject *slow_message, *slow_output, *json_string;
/* Set by setup_response(): the attribute keys a response fills (see RESPONSE_KEYS), the finish-reason table, the
 * Python normalizer for reasons that are not strings, and the two default reasons. */
enum { KEY_ID, KEY_MODEL, KEY_REASONS, KEY_INPUT, KEY_OUTPUT, KEY_CACHE_READ, KEY_REASONING, N_KEYS };
static PyObject *response_keys[N_KEYS];
static PyObject *finish_reason_map, *normalize_reason, *reason_tool_call, *reason_stop;
/* Set by setup_request(): the remembered (operation, ls_provider) prefixes and the Python function that makes one,
 * the model attribute key, and the plans for invocation params and LangSmith metadata (see setup_request). */
static PyObject *prefixes, *make_prefix, *model_key, *param_plan, *metadata_plan, *stop_key;
/* Interned field names. */
static PyObject *s_dict, *s_name, *s_type, *s_content, *s_tool_call_id, *s_tool_calls, *s_id;
static PyObject *s_llm_output, *s_generations, *s_message, *s_generation_info, *s_response_metadata,
    *s_usage_metadata, *s_finish_reason, *s_stop_reason, *s_model_name, *s_model, *s_token_usage, *s_usage,
    *s_prompt_tokens, *s_completion_tokens, *s_input_tokens, *s_output_tokens, *s_input_token_details,
    *s_output_token_details, *s_cache_read, *s_reasoning;

/* ------------------------------------------------------------------------------------------------------------ */
/* A growable byte buffer: starts on the stack, moves to the heap past 2 KB.                                    */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
    int ascii; /* every byte written so far is ASCII: the result can be built without decoding */
    char inline_data[2048];
} Buffer;

static void buffer_init(Buffer *buf)
{
    buf->data = buf->inline_data;
    buf->size = 0;
    buf->capacity = sizeof(buf->inline_data);
    buf->ascii = 1;
}

static void buffer_free(Buffer *buf)
{
    if (buf->data != buf->inline_data)
        PyMem_Free(buf->data);
}

static int buffer_reserve(Buffer *buf, Py_ssize_t extra)
{
    if (buf->size + extra <= buf->capacity)
        return 0;
    Py_ssize_t capacity = buf->capacity;
    while (capacity < buf->size + extra) {
        if (capacity > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        capacity *= 2;
    }
    char *data = PyMem_Malloc((size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(data, buf->data, (size_t)buf->size);
    buffer_free(buf);
    buf->data = data;
    buf->capacity = capacity;
    return 0;
}

static int buffer_write(Buffer *buf, const char *bytes, Py_ssize_t length)
{
    if (buffer_reserve(buf, length) < 0)
        return -1;
    memcpy(buf->data + buf->size, bytes, (size_t)length);
    buf->size += length;
    return 0;
}

#define WRITE_LITERAL(buf, text) buffer_write((buf), (text), (Py_ssize_t)(sizeof(text) - 1))

/* A Python str, as UTF-8. */
static int buffer_write_str(Buffer *buf, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected str from a fallback, got %.100s", Py_TYPE(text)->tp_name);
        return -1;
    }
    Py_ssize_t length;
    const char *bytes = PyUnicode_AsUTF8AndSize(text, &length);
    if (bytes == NULL)
        return -1;
    if (!PyUnicode_IS_ASCII(text))
        buf->ascii = 0;
    return buffer_write(buf, bytes, length);
}

/* Steals the reference to `text` (a fallback's result, possibly NULL on error). */
static int buffer_write_result(Buffer *buf, PyObject *text)
{
    if (text == NULL)
        return -1;
    int status = buffer_write_str(buf, text);
    Py_DECREF(text);
    return status;
}

static PyObject *buffer_finish(Buffer *buf)
{
    if (!buf->ascii)
        return PyUnicode_DecodeUTF8(buf->data, buf->size, NULL);
    PyObject *result = PyUnicode_New(buf->size, 127);
    if (result != NULL)
        memcpy(PyUnicode_DATA(result), buf->data, (size_t)buf->size);
    return result;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Pieces                                                                                                       */

/* `json_string(value)`: a string of printable ASCII without `"` or `\` needs no escaping and is written quoted
 * here; None is null; anything else is the Python function's answer. */
static int write_json_string(Buffer *buf, PyObject *value)
{
    if (value == NULL || value == Py_None)
        return WRITE_LITERAL(buf, "null");
    if (PyUnicode_CheckExact(value) && PyUnicode_IS_ASCII(value)) {
        const unsigned char *chars = PyUnicode_1BYTE_DATA(value);
        Py_ssize_t length = PyUnicode_GET_LENGTH(value), i;
        for (i = 0; i < length; i++) {
            unsigned char c = chars[i];
            if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
                break;
        }
        if (i == length) {
            if (buffer_reserve(buf, length + 2) < 0)
                return -1;
            buf->data[buf->size++] = '"';
            memcpy(buf->data + buf->size, chars, (size_t)length);
            buf->size += length;
            buf->data[buf->size++] = '"';
            return 0;
        }
    }
    Py_INCREF(value); /* borrowed from a dict that Python code could change during the call */
    int status = buffer_write_result(buf, PyObject_CallOneArg(json_string, value));
    Py_DECREF(value);
    return status;
}

/* A field of a message's __dict__ (borrowed; NULL without an exception when absent). */
static PyObject *field(PyObject *fields, PyObject *name)
{
    return PyDict_GetItemWithError(fields, name);
}

/* A truthy field? -1 on error. */
static int field_is_true(PyObject *fields, PyObject *name)
{
    PyObject *value = field(fields, name);
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    return PyObject_IsTrue(value);
}

/* Does every tool call in `calls` (a list or tuple, checked by the caller) take the fast path? */
static int calls_are_dicts(PyObject *calls)
{
    Py_ssize_t count = PySequence_Fast_GET_SIZE(calls);
    PyObject **items = PySequence_Fast_ITEMS(calls);
    for (Py_ssize_t i = 0; i < count; i++)
        if (!PyDict_CheckExact(items[i]))
            return 0;
    return 1;
}

/* One tool call part: {"type":"tool_call","id":...,"name":...}. */
static int write_tool_call(Buffer *buf, PyObject *call)
{
    if (WRITE_LITERAL(buf, "{\"type\":\"tool_call\",\"id\":") < 0 ||
        write_json_string(buf, field(call, s_id)) < 0 || PyErr_Occurred())
        return -1;
    if (WRITE_LITERAL(buf, ",\"name\":") < 0)
        return -1;
    PyObject *name = field(call, s_name);
    if (name == NULL && PyErr_Occurred())
        return -1;
    if (name == NULL ? WRITE_LITERAL(buf, "\"\"") < 0 : write_json_string(buf, name) < 0)
        return -1;
    return WRITE_LITERAL(buf, "}");
}

/* The parts of a message with string content: an optional text part, then one part per tool call. `calls` is
 * NULL or a list/tuple of dicts. */
static int write_parts(Buffer *buf, int has_text, PyObject *calls)
{
    int first = 1;
    if (has_text) {
        if (WRITE_LITERAL(buf, "{\"type\":\"text\"}") < 0)
            return -1;
        first = 0;
    }
    /* The sizes and items are read afresh and held while fallbacks (Python code) run. */
    for (Py_ssize_t i = 0; calls != NULL && i < PySequence_Fast_GET_SIZE(calls); i++) {
        PyObject *call = PySequence_Fast_GET_ITEM(calls, i);
        if (!PyDict_CheckExact(call)) {
            PyErr_SetString(PyExc_RuntimeError, "tool calls changed while their JSON was built");
            return -1;
        }
        if (!first && WRITE_LITERAL(buf, ",") < 0)
            return -1;
        first = 0;
        Py_INCREF(call);
        int status = write_tool_call(buf, call);
        Py_DECREF(call);
        if (status < 0)
            return -1;
    }
    return 0;
}

/* `fields.get("tool_calls") or ()` when it is a list or tuple of dicts: sets *calls (a new reference; NULL for none) and
 * returns 1; 0 when the calls need the Python path; -1 on error. */
static int fast_calls(PyObject *fields, PyObject **calls)
{
    PyObject *value = field(fields, s_tool_calls);
    *calls = NULL;
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 1;
    if (PyList_CheckExact(value) || PyTuple_CheckExact(value)) {
        if (!calls_are_dicts(value))
            return 0;
        if (PySequence_Fast_GET_SIZE(value)) {
            Py_INCREF(value);
            *calls = value;
        }
        return 1;
    }
    int truthy = PyObject_IsTrue(value);
    return truthy < 0 ? -1 : !truthy; /* None, or another empty value: no calls */
}

/* The message's __dict__ (new reference), or NULL without an exception when it has none. */
static PyObject *fields_of(PyObject *msg)
{
    PyObject *fields = PyObject_GetAttr(msg, s_dict);
    if (fields == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
        return NULL;
    }
    if (!PyDict_Check(fields)) {
        Py_DECREF(fields);
        return NULL;
    }
    return fields;
}

/* One input message; 1 written, 0 not handled here (nothing written), -1 error. */
static int write_input_message(Buffer *buf, PyObject *fields)
{
    int named = field_is_true(fields, s_name);
    if (named != 0)
        return named < 0 ? -1 : 0;
    PyObject *msg_type = field(fields, s_type);
    if (msg_type == NULL && PyErr_Occurred())
        return -1;
    PyObject *role = PyDict_GetItemWithError(role_by_type, msg_type != NULL ? msg_type : Py_None);
    if (role == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyUnicode_Check(role))
        return 0;
    if (PyUnicode_CompareWithASCIIString(role, "tool") == 0) {
        PyObject *call_id = field(fields, s_tool_call_id);
        if (call_id == NULL && PyErr_Occurred())
            return -1;
        if (WRITE_LITERAL(buf, "{\"role\":\"tool\",\"parts\":[{\"type\":\"tool_call_response\",\"id\":") < 0 ||
            write_json_string(buf, call_id) < 0 || WRITE_LITERAL(buf, "}]}") < 0)
            return -1;
        return 1;
    }
    PyObject *content = field(fields, s_content);
    if (content == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyUnicode_Check(content))
        return 0;
    int has_text = PyUnicode_GET_LENGTH(content) > 0;
    PyObject *calls;
    int fast = fast_calls(fields, &calls);
    if (fast <= 0)
        return fast;
    if (calls == NULL) {
        PyObject *plain = PyDict_GetItemWithError(has_text ? plain_with_text : plain_empty, role);
        if (plain == NULL)
            return PyErr_Occurred() ? -1 : 0;
        return buffer_write_str(buf, plain) < 0 ? -1 : 1;
    }
    int status = WRITE_LITERAL(buf, "{\"role\":\"") < 0 || buffer_write_str(buf, role) < 0 ||
        WRITE_LITERAL(buf, "\",\"parts\":[") < 0 || write_parts(buf, has_text, calls) < 0 ||
        WRITE_LITERAL(buf, "]}") < 0 ? -1 : 1;
    Py_DECREF(calls);
    return status;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* The module's functions                                                                                       */

/* Whether setup() has run (the functions below read its tables); raises when not. */
static int is_set_up(void)
{
    if (role_by_type != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "_structure.setup() was not called (importing _langchain_messages does it)");
    return 0;
}

static PyObject *structure_json(PyObject *module, PyObject *messages)
{
    if (!is_set_up())
        return NULL;
    int any = PyObject_IsTrue(messages);
    if (any <= 0) {
        if (any < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *sequence = PySequence_Fast(messages, "messages must be iterable");
    if (sequence == NULL)
        return NULL;
    Buffer buf;
    buffer_init(&buf);
    int status = WRITE_LITERAL(&buf, "[");
    /* The size is read afresh and each message held: fallbacks run Python code. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(sequence) && status >= 0; i++) {
        PyObject *msg = PySequence_Fast_GET_ITEM(sequence, i);
        if (i > 0 && (status = WRITE_LITERAL(&buf, ",")) < 0)
            break;
        Py_INCREF(msg);
        PyObject *fields = fields_of(msg);
        if (fields == NULL && PyErr_Occurred())
            status = -1;
        else {
            Py_ssize_t mark = buf.size;
            status = fields != NULL ? write_input_message(&buf, fields) : 0;
            Py_XDECREF(fields);
            if (status == 0) {
                buf.size = mark;
                status = buffer_write_result(&buf, PyObject_CallOneArg(slow_message, msg));
            }
        }
        Py_DECREF(msg);
    }
    Py_DECREF(sequence);
    PyObject *result = NULL;
    if (status >= 0 && WRITE_LITERAL(&buf, "]") >= 0)
        result = buffer_finish(&buf);
    buffer_free(&buf);
    return result;
}

/* One output message; 1 written, 0 not handled here, -1 error. */
static int write_output_message(Buffer *buf, PyObject *fields, PyObject *finish_reason)
{
    PyObject *msg_type = field(fields, s_type);
    if (msg_type == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int assistant = PySet_Contains(assistant_types, msg_type);
    if (assistant <= 0)
        return assistant;
    int named = field_is_true(fields, s_name);
    if (named != 0)
        return named < 0 ? -1 : 0;
    PyObject *content = field(fields, s_content);
    if (content == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyUnicode_CheckExact(content))
        return 0;
    PyObject *calls;
    int fast = fast_calls(fields, &calls);
    if (fast <= 0)
        return fast;
    int has_text = PyUnicode_GET_LENGTH(content) > 0;
    int status = WRITE_LITERAL(buf, "{\"role\":\"assistant\",\"parts\":[") < 0 ||
        write_parts(buf, has_text, calls) < 0 || WRITE_LITERAL(buf, "],\"finish_reason\":") < 0 ? -1 : 1;
    if (status > 0) {
        int reason_given = PyObject_IsTrue(finish_reason); /* none becomes "stop", as output_message() does */
        status = reason_given < 0 || (reason_given ? write_json_string(buf, finish_reason)
                                                   : WRITE_LITERAL(buf, "\"stop\"")) < 0 ||
            WRITE_LITERAL(buf, "}") < 0 ? -1 : 1;
    }
    Py_XDECREF(calls);
    return status;
}

static PyObject *output_structure_json(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "output_structure_json(msg, finish_reason) takes 2 arguments");
        return NULL;
    }
    if (!is_set_up())
        return NULL;
    PyObject *msg = args[0], *finish_reason = args[1];
    PyObject *fields = fields_of(msg);
    if (fields == NULL) {
        if (PyErr_Occurred())
            return NULL;
        return PyObject_CallFunctionObjArgs(slow_output, msg, finish_reason, NULL);
    }
    Buffer buf;
    buffer_init(&buf);
    int status = write_output_message(&buf, fields, finish_reason);
    Py_DECREF(fields);
    PyObject *result = NULL;
    if (status > 0)
        result = buffer_finish(&buf);
    else if (status == 0)
        result = PyObject_CallFunctionObjArgs(slow_output, msg, finish_reason, NULL);
    buffer_free(&buf);
    return result;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Reading an LLMResult (content off)                                                                           */

/* NOT_HERE: this response takes the Python path (a shape the C code does not read); no exception is set. */
#define NOT_HERE (-2)

/* `mapping.get(name)` for a dict, with `or {}` semantics handled by the caller: borrowed, NULL when absent. */
static PyObject *get(PyObject *mapping, PyObject *name)
{
    return mapping != NULL ? PyDict_GetItemWithError(mapping, name) : NULL;
}

/* `value or {}` where value must be a dict to be read here: sets *out (borrowed; NULL for an empty or absent
 * value). Returns 0, NOT_HERE, or -1. */
static int dict_or_empty(PyObject *value, PyObject **out)
{
    *out = NULL;
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (PyDict_Check(value)) {
        *out = PyDict_GET_SIZE(value) ? value : NULL;
        return 0;
    }
    int truthy = PyObject_IsTrue(value);
    return truthy < 0 ? -1 : truthy ? NOT_HERE : 0;
}

/* `a or b`: the first truthy of the two (borrowed; either may be NULL for absent). -1 on error via *failed. */
static PyObject *first_truthy(PyObject *a, PyObject *b, int *failed)
{
    if (PyErr_Occurred()) {
        *failed = 1;
        return NULL;
    }
    if (a != NULL) {
        int truthy = PyObject_IsTrue(a);
        if (truthy < 0) {
            *failed = 1;
            return NULL;
        }
        if (truthy)
            return a;
    }
    return b;
}

/* The finish reason of one generation's message, as _read_response computes it (new reference). */
static PyObject *finish_reason_of(PyObject *metadata, PyObject *generation_info, PyObject *msg_fields)
{
    int failed = 0;
    PyObject *raw = first_truthy(get(metadata, s_finish_reason), NULL, &failed);
    if (!failed && raw == NULL)
        raw = first_truthy(get(metadata, s_stop_reason), NULL, &failed);
    if (!failed && raw == NULL)
        raw = get(generation_info, s_finish_reason);
    if (failed || (raw == NULL && PyErr_Occurred()))
        return NULL;
    PyObject *reason;
    if (raw != NULL && PyUnicode_CheckExact(raw)) {
        reason = PyDict_GetItemWithError(finish_reason_map, raw);
        if (reason == NULL && PyErr_Occurred())
            return NULL;
        reason = reason != NULL ? reason : raw;
        Py_INCREF(reason);
    } else {
        reason = PyObject_CallOneArg(normalize_reason, raw != NULL ? raw : Py_None);
        if (reason == NULL)
            return NULL;
    }
    int truthy = PyObject_IsTrue(reason);
    if (truthy < 0) {
        Py_DECREF(reason);
        return NULL;
    }
    if (!truthy) {
        Py_DECREF(reason);
        int calls = field_is_true(msg_fields, s_tool_calls);
        if (calls < 0)
            return NULL;
        reason = calls ? reason_tool_call : reason_stop;
        Py_INCREF(reason);
    }
    return reason;
}

/* `str(value)` / `int(value)` unless it is one already (new reference). */
static PyObject *as_str(PyObject *value)
{
    if (PyUnicode_CheckExact(value)) {
        Py_INCREF(value);
        return value;
    }
    return PyObject_Str(value);
}

static PyObject *as_int(PyObject *value)
{
    if (PyLong_CheckExact(value)) {
        Py_INCREF(value);
        return value;
    }
    return PyNumber_Long(value);
}

/* found[key] = convert(value); 0 or -1. */
static int put(PyObject *found, int key, PyObject *value, PyObject *(*convert)(PyObject *))
{
    PyObject *converted = convert(value);
    if (converted == NULL)
        return -1;
    int status = PyDict_SetItem(found, response_keys[key], converted);
    Py_DECREF(converted);
    return status;
}

/* found[key] = int(details[name]) when `details` (a usage detail dict) has a truthy `name`. */
static int put_detail(PyObject *found, int key, PyObject *usage, PyObject *details_name, PyObject *name)
{
    PyObject *details;
    int status = dict_or_empty(get(usage, details_name), &details);
    if (status < 0 || details == NULL)
        return status;
    PyObject *value = get(details, name);
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    int truthy = PyObject_IsTrue(value);
    if (truthy <= 0)
        return truthy;
    return put(found, key, value, as_int);
}

/* Reads one generation into the running state; 0, NOT_HERE or -1. */
typedef struct {
    PyObject *reasons;   /* list */
    PyObject *usage;     /* borrowed: the last truthy usage_metadata dict, or NULL */
    PyObject *response_id, *response_model; /* borrowed, or NULL */
    Buffer *json;
    Py_ssize_t messages;
} ResponseState;

static int read_generation(ResponseState *state, PyObject *generation)
{
    PyObject *generation_fields = fields_of(generation);
    if (generation_fields == NULL)
        return PyErr_Occurred() ? -1 : NOT_HERE;
    int status = NOT_HERE;
    PyObject *msg_fields = NULL, *reason = NULL;
    PyObject *msg = PyDict_GetItemWithError(generation_fields, s_message);
    if (msg == NULL || msg == Py_None) { /* a text LLM's generation: the Python path */
        status = PyErr_Occurred() ? -1 : NOT_HERE;
        goto done;
    }
    msg_fields = fields_of(msg);
    if (msg_fields == NULL) {
        status = PyErr_Occurred() ? -1 : NOT_HERE;
        goto done;
    }
    PyObject *metadata, *generation_info, *usage;
    if ((status = dict_or_empty(get(msg_fields, s_response_metadata), &metadata)) != 0 ||
        (status = dict_or_empty(get(generation_fields, s_generation_info), &generation_info)) != 0 ||
        (status = dict_or_empty(get(msg_fields, s_usage_metadata), &usage)) != 0)
        goto done;
    status = -1;
    reason = finish_reason_of(metadata, generation_info, msg_fields);
    if (reason == NULL)
        goto done;
    if (state->messages++ > 0 && WRITE_LITERAL(state->json, ",") < 0)
        goto done;
    Py_ssize_t mark = state->json->size;
    int written = write_output_message(state->json, msg_fields, reason);
    if (written < 0)
        goto done;
    if (written == 0) {
        state->json->size = mark;
        if (buffer_write_result(state->json, PyObject_CallFunctionObjArgs(slow_output, msg, reason, NULL)) < 0)
            goto done;
    }
    if (usage != NULL)
        state->usage = usage;
    int failed = 0;
    if (state->response_id == NULL || !PyObject_IsTrue(state->response_id))
        state->response_id = get(metadata, s_id);
    if (state->response_model == NULL || !PyObject_IsTrue(state->response_model))
        state->response_model = first_truthy(get(metadata, s_model_name), get(metadata, s_model), &failed);
    if (failed || PyErr_Occurred() || PyList_Append(state->reasons, reason) < 0)
        goto done;
    status = 0;
done:
    Py_XDECREF(reason);
    Py_XDECREF(msg_fields);
    Py_DECREF(generation_fields);
    return status;
}

/* The Python _read_response(response, with_content=False), or None when the response takes the Python path. */
static PyObject *read_response(PyObject *module, PyObject *response)
{
    if (!is_set_up())
        return NULL;
    if (response_keys[0] == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_structure.setup_response() was not called");
        return NULL;
    }
    PyObject *fields = fields_of(response);
    if (fields == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *result = NULL, *found = NULL, *generations = NULL;
    Buffer json;
    buffer_init(&json);
    ResponseState state = {PyList_New(0), NULL, NULL, NULL, &json, 0};
    PyObject *llm_output;
    int status = state.reasons == NULL ? -1 : dict_or_empty(get(fields, s_llm_output), &llm_output);
    if (status != 0)
        goto done;
    status = -1;
    int failed = 0;
    state.response_id = get(llm_output, s_id);
    state.response_model = first_truthy(get(llm_output, s_model_name), get(llm_output, s_model), &failed);
    if (failed || PyErr_Occurred())
        goto done;
    /* The state's borrowed values live in dicts the holds below keep alive: generations (and so every message),
     * the response's fields. Python code called on the way (reason normalizer, fallbacks) is our own. */
    status = WRITE_LITERAL(&json, "[");
    PyObject *value = get(fields, s_generations);
    if (status < 0 || (value == NULL && PyErr_Occurred()))
        goto done;
    status = NOT_HERE;
    if (value == NULL || !(PyList_CheckExact(value) || PyTuple_CheckExact(value)))
        goto done;
    generations = PySequence_Tuple(value); /* a snapshot: nothing it holds goes away while it is read */
    if (generations == NULL) {
        status = -1;
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(generations); i++) {
        PyObject *batch = PyTuple_GET_ITEM(generations, i);
        if (!(PyList_CheckExact(batch) || PyTuple_CheckExact(batch))) {
            status = NOT_HERE;
            goto done;
        }
        for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(batch); j++) {
            PyObject *generation = PySequence_Fast_GET_ITEM(batch, j);
            Py_INCREF(generation);
            status = read_generation(&state, generation);
            Py_DECREF(generation);
            if (status != 0)
                goto done;
        }
    }
    status = -1;
    PyObject *usage = state.usage, *token_usage = NULL;
    if (usage == NULL) { /* tokens from llm_output: {"input_tokens": prompt_tokens or input_tokens, ...} */
        PyObject *reported = first_truthy(get(llm_output, s_token_usage), get(llm_output, s_usage), &failed);
        if (failed || (status = dict_or_empty(reported, &token_usage)) != 0)
            goto done;
        status = -1;
    }
    PyObject *input_tokens = NULL, *output_tokens = NULL;
    if (usage != NULL) {
        input_tokens = get(usage, s_input_tokens);
        output_tokens = get(usage, s_output_tokens);
    } else if (token_usage != NULL) { /* token_usage.get("prompt_tokens", token_usage.get("input_tokens")) */
        input_tokens = get(token_usage, s_prompt_tokens);
        if (input_tokens == NULL && !PyErr_Occurred())
            input_tokens = get(token_usage, s_input_tokens);
        output_tokens = get(token_usage, s_completion_tokens);
        if (output_tokens == NULL && !PyErr_Occurred())
            output_tokens = get(token_usage, s_output_tokens);
    }
    if (PyErr_Occurred() || (found = PyDict_New()) == NULL)
        goto done;
    int truthy;
    if (state.response_id != NULL && ((truthy = PyObject_IsTrue(state.response_id)) < 0 ||
                                      (truthy && put(found, KEY_ID, state.response_id, as_str) < 0)))
        goto done;
    if (state.response_model != NULL && ((truthy = PyObject_IsTrue(state.response_model)) < 0 ||
                                          (truthy && put(found, KEY_MODEL, state.response_model, as_str) < 0)))
        goto done;
    if (PyList_GET_SIZE(state.reasons) && PyDict_SetItem(found, response_keys[KEY_REASONS], state.reasons) < 0)
        goto done;
    if (input_tokens != NULL && input_tokens != Py_None && put(found, KEY_INPUT, input_tokens, as_int) < 0)
        goto done;
    if (output_tokens != NULL && output_tokens != Py_None && put(found, KEY_OUTPUT, output_tokens, as_int) < 0)
        goto done;
    if (usage != NULL) {
        if ((status = put_detail(found, KEY_CACHE_READ, usage, s_input_token_details, s_cache_read)) != 0 ||
            (status = put_detail(found, KEY_REASONING, usage, s_output_token_details, s_reasoning)) != 0)
            goto done;
        status = -1;
    }
    PyObject *outputs = PyList_New(0), *outputs_json = Py_None;
    Py_INCREF(Py_None);
    if (outputs != NULL && state.messages > 0) {
        Py_DECREF(outputs_json);
        outputs_json = WRITE_LITERAL(&json, "]") < 0 ? NULL : buffer_finish(&json);
    }
    if (outputs != NULL && outputs_json != NULL)
        result = PyTuple_Pack(5, found, outputs, outputs_json, input_tokens ? input_tokens : Py_None,
                              output_tokens ? output_tokens : Py_None);
    Py_XDECREF(outputs);
    Py_XDECREF(outputs_json);
    status = result != NULL ? 0 : -1;
done:
    if (status == NOT_HERE && !PyErr_Occurred()) {
        Py_INCREF(Py_None);
        result = Py_None;
    }
    Py_XDECREF(found);
    Py_XDECREF(generations);
    Py_XDECREF(state.reasons);
    Py_DECREF(fields);
    buffer_free(&json);
    return result;
}

static int set_global(PyObject **slot, PyObject *value)
{
    Py_INCREF(value);
    Py_XSETREF(*slot, value);
    return 0;
}

static PyObject *setup(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"role_by_type", "plain_with_text", "plain_empty", "assistant_types",
                               "slow_message", "slow_output", "json_string", NULL};
    PyObject *roles, *with_text, *empty, *assistants, *message_fallback, *output_fallback, *string_fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!O!OOO:setup", keywords, &PyDict_Type, &roles,
                                     &PyDict_Type, &with_text, &PyDict_Type, &empty, &PyFrozenSet_Type,
                                     &assistants, &message_fallback, &output_fallback, &string_fallback))
        return NULL;
    if (!PyCallable_Check(message_fallback) || !PyCallable_Check(output_fallback) ||
        !PyCallable_Check(string_fallback)) {
        PyErr_SetString(PyExc_TypeError, "setup: the fallbacks must be callable");
        return NULL;
    }
    set_global(&plain_with_text, with_text);
    set_global(&plain_empty, empty);
    set_global(&assistant_types, assistants);
    set_global(&slow_message, message_fallback);
    set_global(&slow_output, output_fallback);
    set_global(&json_string, string_fallback);
    set_global(&role_by_type, roles); /* last: is_set_up() checks it */
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Request attributes                                                                                           */

/* Plan entry kinds, as setup_request() receives them. */
enum { PARAM_NUMBER = 0, PARAM_CHOICES = 1, PARAM_STOP = 2, PARAM_FLAG = 3 };

/* `[value] if isinstance(value, str) else list(value)` (new reference). */
static PyObject *stop_sequences(PyObject *value)
{
    if (PyUnicode_Check(value)) {
        PyObject *list = PyList_New(1);
        if (list != NULL) {
            Py_INCREF(value);
            PyList_SET_ITEM(list, 0, value);
        }
        return list;
    }
    return PySequence_List(value);
}

static int is_number(PyObject *value)
{
    return !PyBool_Check(value) && (PyLong_Check(value) || PyFloat_Check(value));
}

/* attributes[key] = value, stealing `value` (NULL: an error is set). */
static int set_stolen(PyObject *attributes, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int status = PyDict_SetItem(attributes, key, value);
    Py_DECREF(value);
    return status;
}

/* One invocation param by its plan entry (kind, attribute key). */
static int apply_param(PyObject *attributes, long kind, PyObject *key, PyObject *value)
{
    int truthy;
    switch (kind) {
    case PARAM_NUMBER: /* a number, not a flag */
        return is_number(value) ? PyDict_SetItem(attributes, key, value) : 0;
    case PARAM_CHOICES: { /* an int other than 1 */
        if (!PyLong_Check(value))
            return 0;
        PyObject *one = PyLong_FromLong(1);
        if (one == NULL)
            return -1;
        int other = PyObject_RichCompareBool(value, one, Py_NE);
        Py_DECREF(one);
        return other <= 0 ? other : PyDict_SetItem(attributes, key, value);
    }
    case PARAM_STOP:
        truthy = PyObject_IsTrue(value);
        return truthy <= 0 ? truthy : set_stolen(attributes, key, stop_sequences(value));
    default: /* stream / streaming */
        truthy = PyObject_IsTrue(value);
        return truthy <= 0 ? truthy : PyDict_SetItem(attributes, key, Py_True);
    }
}

/* The Python langchain._request_attributes(operation, model, params, metadata), or None when params or metadata
 * are not dicts (the Python function reads any mapping). */
static PyObject *request_attributes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "request_attributes(operation, model, params, metadata) takes 4 arguments");
        return NULL;
    }
    if (param_plan == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_structure.setup_request() was not called");
        return NULL;
    }
    PyObject *operation = args[0], *model = args[1], *params = args[2], *metadata = args[3];
    if (!PyDict_Check(params) || !PyDict_Check(metadata))
        Py_RETURN_NONE;
    PyObject *ls_provider = PyDict_GetItemString(metadata, "ls_provider");
    ls_provider = ls_provider != NULL ? ls_provider : Py_None;
    /* The remembered prefix for (operation, ls_provider); the Python function makes (and remembers) a new one. */
    PyObject *prefix = NULL, *key = PyTuple_Pack(2, operation, ls_provider);
    if (key == NULL)
        return NULL;
    prefix = PyDict_GetItemWithError(prefixes, key);
    Py_DECREF(key);
    if (prefix != NULL)
        Py_INCREF(prefix);
    else {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) /* TypeError: an unhashable ls_provider */
                return NULL;
            PyErr_Clear();
        }
        prefix = PyObject_CallFunctionObjArgs(make_prefix, operation, ls_provider, NULL);
        if (prefix == NULL)
            return NULL;
    }
    PyObject *attributes = PyDict_Check(prefix) ? PyDict_Copy(prefix) : NULL;
    Py_DECREF(prefix);
    if (attributes == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "the prefix function must return a dict");
        return NULL;
    }
    int truthy = PyObject_IsTrue(model);
    if (truthy < 0 || (truthy && PyDict_SetItem(attributes, model_key, model) < 0))
        goto fail;
    /* Plans are sorted by parameter name, so attributes come out in the same order in every process. */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(param_plan); i++) {
        PyObject *entry = PyTuple_GET_ITEM(param_plan, i); /* (param, kind, attribute key) */
        PyObject *value = PyDict_GetItemWithError(params, PyTuple_GET_ITEM(entry, 0));
        if (value == NULL) {
            if (PyErr_Occurred())
                goto fail;
            continue;
        }
        Py_INCREF(value);
        int status = apply_param(attributes, PyLong_AsLong(PyTuple_GET_ITEM(entry, 1)), PyTuple_GET_ITEM(entry, 2),
                                 value);
        Py_DECREF(value);
        if (status < 0)
            goto fail;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(metadata_plan); i++) {
        PyObject *entry = PyTuple_GET_ITEM(metadata_plan, i); /* (ls key, param or None, attribute key) */
        PyObject *value = PyDict_GetItemWithError(metadata, PyTuple_GET_ITEM(entry, 0));
        if (value == NULL) {
            if (PyErr_Occurred())
                goto fail;
            continue;
        }
        PyObject *param = PyTuple_GET_ITEM(entry, 1), *attribute = PyTuple_GET_ITEM(entry, 2);
        int status;
        Py_INCREF(value);
        if (param == Py_None) { /* ls_stop: stop sequences unless the params gave them */
            status = PyObject_IsTrue(value);
            if (status > 0) {
                status = PyDict_Contains(attributes, stop_key);
                status = status != 0 ? (status < 0 ? -1 : 0) : set_stolen(attributes, attribute, stop_sequences(value));
            }
        } else { /* a number the params did not give */
            status = PyDict_Contains(params, param);
            status = status != 0 ? (status < 0 ? -1 : 0)
                                 : (is_number(value) ? PyDict_SetItem(attributes, attribute, value) : 0);
        }
        Py_DECREF(value);
        if (status < 0)
            goto fail;
    }
    return attributes;
fail:
    Py_DECREF(attributes);
    return NULL;
}

static int check_plan(PyObject *plan, const char *name)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(plan); i++) {
        PyObject *entry = PyTuple_GET_ITEM(plan, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3 || !PyUnicode_Check(PyTuple_GET_ITEM(entry, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(entry, 2))) {
            PyErr_Format(PyExc_TypeError, "setup_request: %s entries are (name, kind or param, attribute key)", name);
            return -1;
        }
    }
    return 0;
}

static PyObject *setup_request(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"prefixes", "make_prefix", "model_key", "stop_key", "param_plan", "metadata_plan",
                               NULL};
    PyObject *known, *maker, *model_attribute, *stop_attribute, *params, *metadata;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OUUO!O!:setup_request", keywords, &PyDict_Type, &known,
                                     &maker, &model_attribute, &stop_attribute, &PyTuple_Type, &params,
                                     &PyTuple_Type, &metadata))
        return NULL;
    if (!PyCallable_Check(maker)) {
        PyErr_SetString(PyExc_TypeError, "setup_request: make_prefix must be callable");
        return NULL;
    }
    if (check_plan(params, "param_plan") < 0 || check_plan(metadata, "metadata_plan") < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(params); i++) {
        if (!PyLong_Check(PyTuple_GET_ITEM(PyTuple_GET_ITEM(params, i), 1))) {
            PyErr_SetString(PyExc_TypeError, "setup_request: param_plan kinds are ints");
            return NULL;
        }
    }
    set_global(&prefixes, known);
    set_global(&make_prefix, maker);
    set_global(&model_key, model_attribute);
    set_global(&stop_key, stop_attribute);
    set_global(&metadata_plan, metadata);
    set_global(&param_plan, params); /* last: request_attributes checks it to know setup is done */
    Py_RETURN_NONE;
}

static PyObject *setup_response(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"keys", "finish_reason_map", "normalize_finish_reason", "tool_call", "stop", NULL};
    PyObject *keys, *reasons, *normalize, *tool_call, *stop;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!OUU:setup_response", keywords, &PyTuple_Type, &keys,
                                     &PyDict_Type, &reasons, &normalize, &tool_call, &stop))
        return NULL;
    if (PyTuple_GET_SIZE(keys) != N_KEYS || !PyCallable_Check(normalize)) {
        PyErr_Format(PyExc_TypeError, "setup_response: %d attribute keys and a callable normalizer expected", N_KEYS);
        return NULL;
    }
    for (int i = 0; i < N_KEYS; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(keys, i))) {
            PyErr_SetString(PyExc_TypeError, "setup_response: attribute keys must be strings");
            return NULL;
        }
    }
    for (int i = 0; i < N_KEYS; i++)
        set_global(&response_keys[i], PyTuple_GET_ITEM(keys, i));
    set_global(&finish_reason_map, reasons);
    set_global(&normalize_reason, normalize);
    set_global(&reason_tool_call, tool_call);
    set_global(&reason_stop, stop);
    Py_RETURN_NONE;
}

static PyObject *not_set_up(PyObject *module, PyObject *args)
{
    return PyBool_FromLong(role_by_type == NULL);
}

static PyMethodDef methods[] = {
    {"setup", (PyCFunction)(void (*)(void))setup, METH_VARARGS | METH_KEYWORDS,
     "setup(role_by_type, plain_with_text, plain_empty, assistant_types, slow_message, slow_output, json_string)"
     "\n\nThe role tables and the Python fallbacks; called once before the other functions."},
    {"structure_json", (PyCFunction)structure_json, METH_O,
     "structure_json(messages) -> str | None\n\n_langchain_messages.structure_json, in C."},
    {"output_structure_json", (PyCFunction)(void (*)(void))output_structure_json, METH_FASTCALL,
     "output_structure_json(msg, finish_reason) -> str\n\n_langchain_messages.output_structure_json, in C."},
    {"setup_response", (PyCFunction)(void (*)(void))setup_response, METH_VARARGS | METH_KEYWORDS,
     "setup_response(keys, finish_reason_map, normalize_finish_reason, tool_call, stop)\n\nWhat read_response "
     "needs: the attribute keys (response id, response model, finish reasons, input tokens, output tokens, cache "
     "read tokens, reasoning tokens), the finish-reason table and normalizer, the two default reasons."},
    {"read_response", (PyCFunction)read_response, METH_O,
     "read_response(llm_result) -> tuple | None\n\nlangchain._read_response(llm_result, with_content=False), in C; "
     "None for a response shape only the Python function reads."},
    {"setup_request", (PyCFunction)(void (*)(void))setup_request, METH_VARARGS | METH_KEYWORDS,
     "setup_request(prefixes, make_prefix, model_key, stop_key, param_plan, metadata_plan)\n\nWhat "
     "request_attributes needs: langchain._PREFIXES and _prefix, two attribute keys, and the sorted plans for "
     "invocation params ((param, kind, key); kinds 0 number, 1 choice count, 2 stop sequences, 3 flag) and "
     "metadata ((ls key, param it stands in for or None for stop sequences, key))."},
    {"request_attributes", (PyCFunction)(void (*)(void))request_attributes, METH_FASTCALL,
     "request_attributes(operation, model, params, metadata) -> dict | None\n\nlangchain._request_attributes in C; "
     "None when params or metadata are not dicts."},
    {"not_set_up", not_set_up, METH_NOARGS, "True until setup() has been called."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_structure",
    "The LangChain instrumentor's content-off reads, in C: message JSON, request and response attributes.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__structure(void)
{
    s_dict = PyUnicode_InternFromString("__dict__");
    s_name = PyUnicode_InternFromString("name");
    s_type = PyUnicode_InternFromString("type");
    s_content = PyUnicode_InternFromString("content");
    s_tool_call_id = PyUnicode_InternFromString("tool_call_id");
    s_tool_calls = PyUnicode_InternFromString("tool_calls");
    s_id = PyUnicode_InternFromString("id");
    if (!s_dict || !s_name || !s_type || !s_content || !s_tool_call_id || !s_tool_calls || !s_id)
        return NULL;
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_llm_output, "llm_output"}, {&s_generations, "generations"}, {&s_message, "message"},
        {&s_generation_info, "generation_info"}, {&s_response_metadata, "response_metadata"},
        {&s_usage_metadata, "usage_metadata"}, {&s_finish_reason, "finish_reason"}, {&s_stop_reason, "stop_reason"},
        {&s_model_name, "model_name"}, {&s_model, "model"}, {&s_token_usage, "token_usage"}, {&s_usage, "usage"},
        {&s_prompt_tokens, "prompt_tokens"}, {&s_completion_tokens, "completion_tokens"},
        {&s_input_tokens, "input_tokens"}, {&s_output_tokens, "output_tokens"},
        {&s_input_token_details, "input_token_details"}, {&s_output_token_details, "output_token_details"},
        {&s_cache_read, "cache_read"}, {&s_reasoning, "reasoning"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    return PyModule_Create(&module_def);
}
