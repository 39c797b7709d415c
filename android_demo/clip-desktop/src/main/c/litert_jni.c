/*
 * JNI shim between dev.clipedge.clip.runtime.LiteRtJvmModel and LiteRT's C API (libLiteRt.so of the
 * ai-edge-litert 2.3.0 wheel): open a .tflite as a CompiledModel, describe every signature's tensors, run one
 * signature with direct ByteBuffers, close. Java does the checking and the arithmetic; this file only translates.
 *
 * We declare the few LiteRT prototypes we call instead of including LiteRT's headers, which the wheel does not
 * ship. The LiteRT repository has no 2.3.0 tag; each declaration follows its litert/c headers at tag v2.2.0, and
 * none of them changed up to the August 2026 HEAD, after 2.3.0. Every symbol is exported by the wheel's
 * libLiteRt.so (checked with `nm -D`). Handles are opaque pointers and enums are ints. The structs we pass to
 * the library have exactly the layout of its headers: LiteRtAny and LiteRtEnvOption (litert_any.h,
 * litert_environment_options.h: 16 and 24 bytes), LiteRtLayout and LiteRtRankedTensorType (litert_layout.h,
 * litert_model_types.h: 68 and 72 bytes), sizes on 64-bit hosts asserted there and here.
 *
 * Every LiteRtStatus other than OK becomes a dev.clipedge.clip.runtime.LiteRtException naming the call and the
 * status; every error path frees what was created so far.
 */
#include <jni.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- LiteRT declarations (see the comment at the top) ----------------------------------------------------- */

typedef int LiteRtStatus; /* an enum in litert_common.h; kLiteRtStatusOk = 0 */
#define kLiteRtStatusOk 0

typedef struct LiteRtEnvironmentT* LiteRtEnvironment;
typedef struct LiteRtModelT* LiteRtModel;
typedef struct LiteRtSignatureT* LiteRtSignature;
typedef struct LiteRtTensorT* LiteRtTensor;
typedef struct LiteRtOptionsT* LiteRtOptions;
typedef struct LiteRtOpaqueOptionsT* LiteRtOpaqueOptions;
typedef struct LiteRtCompiledModelT* LiteRtCompiledModel;
typedef struct LiteRtTensorBufferT* LiteRtTensorBuffer;
typedef struct LiteRtTensorBufferRequirementsT* LiteRtTensorBufferRequirements;
/* litert_any.h and litert_environment_options.h: a tagged value, 16 bytes, and an environment option, 24. */
typedef struct {
  int type; /* LiteRtAnyType: kLiteRtAnyTypeInt = 2 */
  union {
    bool bool_value;
    int64_t int_value;
    double real_value;
    const char* str_value;
    const void* ptr_value;
  };
} LiteRtAny;
typedef struct {
  int tag; /* LiteRtEnvOptionTag */
  LiteRtAny value;
} LiteRtEnvOption;
#define kLiteRtAnyTypeInt 2
#define kLiteRtEnvOptionTagAutoRegisterAccelerators 24
#define kLiteRtEnvOptionTagMinLoggerSeverity 25
#define kLiteRtLogSeverityInfo 1
#define kLiteRtLogSeverityError 3
typedef size_t LiteRtParamIndex;
typedef int LiteRtHwAcceleratorSet; /* bits: CPU 1, GPU 2, NPU 4 (LiteRtHwAccelerators) */
typedef int LiteRtElementType;      /* enum values equal TfLiteType's: float32 1, int32 2, uint8 3, int8 9, ... */

#define LITERT_TENSOR_MAX_RANK 8
typedef struct {
  unsigned int rank : 7;
  unsigned int has_strides : 1;
  int32_t dimensions[LITERT_TENSOR_MAX_RANK];
  uint32_t strides[LITERT_TENSOR_MAX_RANK];
} LiteRtLayout;

typedef struct {
  LiteRtElementType element_type;
  LiteRtLayout layout;
} LiteRtRankedTensorType;

_Static_assert(sizeof(void*) != 8 || sizeof(LiteRtEnvOption) == 24, "LiteRtEnvOption differs from LiteRT 2.3.0");
_Static_assert(sizeof(void*) != 8 || sizeof(LiteRtLayout) == 68, "LiteRtLayout differs from LiteRT 2.3.0");
_Static_assert(sizeof(void*) != 8 || sizeof(LiteRtRankedTensorType) == 72,
               "LiteRtRankedTensorType differs from LiteRT 2.3.0");

#define kLiteRtTensorTypeIdRanked 0 /* LiteRtTensorTypeId */
#define kLiteRtTensorBufferLockModeRead 0
#define kLiteRtTensorBufferLockModeWrite 1

LiteRtStatus LiteRtCreateEnvironment(int num_options, const LiteRtEnvOption* options,
                                     LiteRtEnvironment* environment);
void LiteRtDestroyEnvironment(LiteRtEnvironment environment);
LiteRtStatus LiteRtCreateModelFromFile(LiteRtEnvironment environment, const char* filename, LiteRtModel* model);
void LiteRtDestroyModel(LiteRtModel model);
LiteRtStatus LiteRtGetNumModelSignatures(LiteRtModel model, LiteRtParamIndex* num_signatures);
LiteRtStatus LiteRtGetModelSignature(LiteRtModel model, LiteRtParamIndex signature_index,
                                     LiteRtSignature* signature);
LiteRtStatus LiteRtGetSignatureKey(LiteRtSignature signature, const char** signature_key);
LiteRtStatus LiteRtGetNumSignatureInputs(LiteRtSignature signature, LiteRtParamIndex* num_inputs);
LiteRtStatus LiteRtGetNumSignatureOutputs(LiteRtSignature signature, LiteRtParamIndex* num_outputs);
LiteRtStatus LiteRtGetSignatureInputName(LiteRtSignature signature, LiteRtParamIndex input_idx,
                                         const char** input_name);
LiteRtStatus LiteRtGetSignatureOutputName(LiteRtSignature signature, LiteRtParamIndex output_idx,
                                          const char** output_name);
LiteRtStatus LiteRtGetSignatureInputTensorByIndex(LiteRtSignature signature, LiteRtParamIndex input_idx,
                                                  LiteRtTensor* tensor);
LiteRtStatus LiteRtGetSignatureOutputTensorByIndex(LiteRtSignature signature, LiteRtParamIndex output_idx,
                                                   LiteRtTensor* tensor);
LiteRtStatus LiteRtGetTensorTypeId(LiteRtTensor tensor, int* type_id);
LiteRtStatus LiteRtGetRankedTensorType(LiteRtTensor tensor, LiteRtRankedTensorType* ranked_tensor_type);
LiteRtStatus LiteRtCreateOptions(LiteRtOptions* options);
void LiteRtDestroyOptions(LiteRtOptions options);
LiteRtStatus LiteRtSetOptionsHardwareAccelerators(LiteRtOptions options, LiteRtHwAcceleratorSet accelerators);
LiteRtStatus LiteRtCreateOpaqueOptions(const char* payload_identifier, void* payload_data,
                                       void (*payload_destructor)(void* payload_data),
                                       LiteRtOpaqueOptions* options);
void LiteRtDestroyOpaqueOptions(LiteRtOpaqueOptions options);
LiteRtStatus LiteRtAddOpaqueOptions(LiteRtOptions options, LiteRtOpaqueOptions opaque_options);
LiteRtStatus LiteRtCreateCompiledModel(LiteRtEnvironment environment, LiteRtModel model,
                                       LiteRtOptions compilation_options, LiteRtCompiledModel* compiled_model);
void LiteRtDestroyCompiledModel(LiteRtCompiledModel compiled_model);
LiteRtStatus LiteRtGetCompiledModelInputBufferRequirements(LiteRtCompiledModel compiled_model,
                                                           LiteRtParamIndex signature_index,
                                                           LiteRtParamIndex input_index,
                                                           LiteRtTensorBufferRequirements* requirements);
LiteRtStatus LiteRtGetCompiledModelOutputBufferRequirements(LiteRtCompiledModel compiled_model,
                                                            LiteRtParamIndex signature_index,
                                                            LiteRtParamIndex output_index,
                                                            LiteRtTensorBufferRequirements* requirements);
LiteRtStatus LiteRtCreateManagedTensorBufferFromRequirements(LiteRtEnvironment env,
                                                             const LiteRtRankedTensorType* tensor_type,
                                                             LiteRtTensorBufferRequirements requirements,
                                                             LiteRtTensorBuffer* buffer);
LiteRtStatus LiteRtGetTensorBufferPackedSize(LiteRtTensorBuffer tensor_buffer, size_t* size);
LiteRtStatus LiteRtLockTensorBuffer(LiteRtTensorBuffer tensor_buffer, void** host_mem_addr, int lock_mode);
LiteRtStatus LiteRtUnlockTensorBuffer(LiteRtTensorBuffer buffer);
void LiteRtDestroyTensorBuffer(LiteRtTensorBuffer buffer);
LiteRtStatus LiteRtRunCompiledModel(LiteRtCompiledModel compiled_model, LiteRtParamIndex signature_index,
                                    size_t num_input_buffers, LiteRtTensorBuffer* input_buffers,
                                    size_t num_output_buffers, LiteRtTensorBuffer* output_buffers);

/* --- Errors -------------------------------------------------------------------------------------------------- */

/* LiteRtGetStatusString is not exported by the wheel's library, so the names of litert_common.h's enum. */
static const char* status_name(LiteRtStatus status) {
  switch (status) {
    case 0: return "kLiteRtStatusOk";
    case 1: return "kLiteRtStatusErrorInvalidArgument";
    case 2: return "kLiteRtStatusErrorMemoryAllocationFailure";
    case 3: return "kLiteRtStatusErrorRuntimeFailure";
    case 4: return "kLiteRtStatusErrorMissingInputTensor";
    case 5: return "kLiteRtStatusErrorUnsupported";
    case 6: return "kLiteRtStatusErrorNotFound";
    case 7: return "kLiteRtStatusErrorTimeoutExpired";
    case 8: return "kLiteRtStatusErrorWrongVersion";
    case 9: return "kLiteRtStatusErrorUnknown";
    case 10: return "kLiteRtStatusErrorAlreadyExists";
    case 100: return "kLiteRtStatusCancelled";
    case 500: return "kLiteRtStatusErrorFileIO";
    case 501: return "kLiteRtStatusErrorInvalidFlatbuffer";
    case 502: return "kLiteRtStatusErrorDynamicLoading";
    case 503: return "kLiteRtStatusErrorSerialization";
    case 504: return "kLiteRtStatusErrorCompilation";
    case 1000: return "kLiteRtStatusErrorIndexOOB";
    default: return "an unlisted LiteRtStatus";
  }
}

static void throw_java(JNIEnv* env, const char* class_name, const char* message) {
  if ((*env)->ExceptionCheck(env)) {
    return; /* keep the first exception */
  }
  jclass cls = (*env)->FindClass(env, class_name);
  if (cls != NULL) {
    (*env)->ThrowNew(env, cls, message);
  }
}

/* Returns 1 when `status` is OK, else throws LiteRtException("CALL (WHAT) failed: NAME (CODE)") and returns 0. */
static int check(JNIEnv* env, LiteRtStatus status, const char* call, const char* what) {
  if (status == kLiteRtStatusOk) {
    return 1;
  }
  char message[1024];
  snprintf(message, sizeof message, "%s%s%s%s failed: %s (%d)", call, what ? " (" : "", what ? what : "",
           what ? ")" : "", status_name(status), status);
  throw_java(env, "dev/clipedge/clip/runtime/LiteRtException", message);
  return 0;
}

/* --- The handle Java holds ------------------------------------------------------------------------------------ */

typedef struct {
  const char* name; /* signature name, owned by the model */
  LiteRtRankedTensorType type;
  LiteRtTensorBuffer buffer; /* host buffer the compiled model reads or writes; reused by every run */
  size_t bytes;
} Tensor;

/* One signature (one subgraph: the length buckets of a text encoder are several) with its own buffers. */
typedef struct {
  const char* key; /* owned by the model */
  size_t num_inputs, num_outputs;
  Tensor* inputs;
  Tensor* outputs;
} Signature;

typedef struct {
  LiteRtEnvironment environment;
  LiteRtModel model;
  LiteRtOptions options; /* kept until the compiled model is gone: the compiled model may refer to it */
  LiteRtCompiledModel compiled;
  size_t num_signatures;
  Signature* signatures;
} Model;

static void free_tensors(Tensor* tensors, size_t count) {
  for (size_t i = 0; tensors != NULL && i < count; i++) {
    if (tensors[i].buffer) LiteRtDestroyTensorBuffer(tensors[i].buffer);
  }
  free(tensors);
}

static void free_model(Model* m) {
  if (m == NULL) {
    return;
  }
  for (size_t s = 0; m->signatures != NULL && s < m->num_signatures; s++) {
    free_tensors(m->signatures[s].inputs, m->signatures[s].num_inputs);
    free_tensors(m->signatures[s].outputs, m->signatures[s].num_outputs);
  }
  free(m->signatures);
  if (m->compiled) LiteRtDestroyCompiledModel(m->compiled);
  if (m->options) LiteRtDestroyOptions(m->options);
  if (m->model) LiteRtDestroyModel(m->model);
  if (m->environment) LiteRtDestroyEnvironment(m->environment);
  free(m);
}

/* LiteRT's CPU accelerator reads its options as TOML text under the identifier "xnnpack" (what the
 * unexported LrtGetOpaqueCpuOptionsData of litert/c/options/litert_cpu_options.cc builds); it sets both
 * XNNPACK's and the interpreter's thread count from num_threads. */
static int add_cpu_threads(JNIEnv* env, LiteRtOptions options, int threads) {
  char* toml = malloc(48);
  if (toml == NULL) {
    throw_java(env, "java/lang/OutOfMemoryError", "CPU options");
    return 0;
  }
  snprintf(toml, 48, "num_threads = %d\n", threads);
  LiteRtOpaqueOptions cpu = NULL;
  if (!check(env, LiteRtCreateOpaqueOptions("xnnpack", toml, free, &cpu), "LiteRtCreateOpaqueOptions",
             "CPU threads")) {
    free(toml); /* not owned by LiteRT when creation failed */
    return 0;
  }
  if (!check(env, LiteRtAddOpaqueOptions(options, cpu), "LiteRtAddOpaqueOptions", "CPU threads")) {
    LiteRtDestroyOpaqueOptions(cpu); /* ownership passes only on success */
    return 0;
  }
  return 1;
}

/* Name, type and host buffer of input or output `index` of signature `signature_index`. */
static int describe(JNIEnv* env, Model* m, LiteRtParamIndex signature_index, LiteRtSignature signature, int output,
                    size_t index, Tensor* t) {
  LiteRtTensor tensor;
  int type_id;
  LiteRtTensorBufferRequirements requirements; /* owned by the compiled model */
  const char* side = output ? "output" : "input";
  if (!(output ? check(env, LiteRtGetSignatureOutputName(signature, index, &t->name),
                       "LiteRtGetSignatureOutputName", NULL)
               : check(env, LiteRtGetSignatureInputName(signature, index, &t->name),
                       "LiteRtGetSignatureInputName", NULL)) ||
      !(output ? check(env, LiteRtGetSignatureOutputTensorByIndex(signature, index, &tensor),
                       "LiteRtGetSignatureOutputTensorByIndex", t->name)
               : check(env, LiteRtGetSignatureInputTensorByIndex(signature, index, &tensor),
                       "LiteRtGetSignatureInputTensorByIndex", t->name)) ||
      !check(env, LiteRtGetTensorTypeId(tensor, &type_id), "LiteRtGetTensorTypeId", t->name)) {
    return 0;
  }
  if (type_id != kLiteRtTensorTypeIdRanked) {
    char message[512];
    snprintf(message, sizeof message, "%s tensor %s has no fixed rank; only ranked tensors are supported", side,
             t->name);
    throw_java(env, "dev/clipedge/clip/runtime/LiteRtException", message);
    return 0;
  }
  return check(env, LiteRtGetRankedTensorType(tensor, &t->type), "LiteRtGetRankedTensorType", t->name) &&
         (output ? check(env, LiteRtGetCompiledModelOutputBufferRequirements(m->compiled, signature_index, index,
                                                                        &requirements),
                         "LiteRtGetCompiledModelOutputBufferRequirements", t->name)
                 : check(env, LiteRtGetCompiledModelInputBufferRequirements(m->compiled, signature_index, index,
                                                                       &requirements),
                         "LiteRtGetCompiledModelInputBufferRequirements", t->name)) &&
         check(env, LiteRtCreateManagedTensorBufferFromRequirements(m->environment, &t->type, requirements,
                                                                    &t->buffer),
               "LiteRtCreateManagedTensorBufferFromRequirements", t->name) &&
         check(env, LiteRtGetTensorBufferPackedSize(t->buffer, &t->bytes), "LiteRtGetTensorBufferPackedSize",
               t->name);
}

static Model* handle(JNIEnv* env, jlong h) {
  if (h == 0) {
    throw_java(env, "java/lang/IllegalStateException", "the model is closed");
  }
  return (Model*)(intptr_t)h;
}

static Signature* signature_at(JNIEnv* env, Model* m, jint signature) {
  if (signature < 0 || (size_t)signature >= m->num_signatures) {
    throw_java(env, "java/lang/IndexOutOfBoundsException", "signature index");
    return NULL;
  }
  return &m->signatures[signature];
}

static Tensor* tensor_at(JNIEnv* env, Model* m, jint signature, jboolean output, jint index) {
  Signature* sig = signature_at(env, m, signature);
  if (sig == NULL) {
    return NULL;
  }
  size_t count = output ? sig->num_outputs : sig->num_inputs;
  if (index < 0 || (size_t)index >= count) {
    throw_java(env, "java/lang/IndexOutOfBoundsException", output ? "output index" : "input index");
    return NULL;
  }
  return output ? &sig->outputs[index] : &sig->inputs[index];
}

/* --- JNI entry points ----------------------------------------------------------------------------------------- */

JNIEXPORT jlong JNICALL Java_dev_clipedge_clip_runtime_LiteRtJvmModel_nativeOpen(JNIEnv* env, jclass cls,
                                                                                 jstring jpath,
                                                                                 jint accelerators,
                                                                                 jint cpu_threads,
                                                                                 jboolean runtime_logs) {
  (void)cls;
  const char* path = (*env)->GetStringUTFChars(env, jpath, NULL);
  if (path == NULL) {
    return 0; /* OutOfMemoryError pending */
  }
  Model* m = calloc(1, sizeof(Model));
  LiteRtParamIndex num_signatures = 0;
  int ok = m != NULL;
  if (!ok) {
    throw_java(env, "java/lang/OutOfMemoryError", "model handle");
  }
  /* Register only the accelerators asked for (by default LiteRT tries to load every GPU and NPU library), and
   * keep LiteRT's informational logging off stderr unless asked: the command line's stderr is for errors. The
   * logger severity is process-wide in LiteRT. */
  LiteRtEnvOption environment_options[2] = {
      {kLiteRtEnvOptionTagAutoRegisterAccelerators, {.type = kLiteRtAnyTypeInt, .int_value = accelerators}},
      {kLiteRtEnvOptionTagMinLoggerSeverity,
       {.type = kLiteRtAnyTypeInt, .int_value = runtime_logs ? kLiteRtLogSeverityInfo : kLiteRtLogSeverityError}},
  };
  ok = ok &&
       check(env, LiteRtCreateEnvironment(2, environment_options, &m->environment), "LiteRtCreateEnvironment",
             NULL) &&
       check(env, LiteRtCreateModelFromFile(m->environment, path, &m->model), "LiteRtCreateModelFromFile", path) &&
       check(env, LiteRtGetNumModelSignatures(m->model, &num_signatures), "LiteRtGetNumModelSignatures", path);
  if (ok && num_signatures == 0) {
    char message[1024];
    snprintf(message, sizeof message, "%s has no signature; export it from a concrete function", path);
    throw_java(env, "dev/clipedge/clip/runtime/LiteRtException", message);
    ok = 0;
  }
  ok = ok && check(env, LiteRtCreateOptions(&m->options), "LiteRtCreateOptions", NULL) &&
       check(env, LiteRtSetOptionsHardwareAccelerators(m->options, accelerators),
             "LiteRtSetOptionsHardwareAccelerators", NULL) &&
       (cpu_threads <= 0 || add_cpu_threads(env, m->options, cpu_threads)) &&
       check(env, LiteRtCreateCompiledModel(m->environment, m->model, m->options, &m->compiled),
             "LiteRtCreateCompiledModel", path);
  if (ok) {
    m->signatures = calloc(num_signatures, sizeof(Signature));
    if (m->signatures == NULL) {
      throw_java(env, "java/lang/OutOfMemoryError", "signature table");
      ok = 0;
    }
  }
  for (LiteRtParamIndex s = 0; ok && s < num_signatures; s++) {
    Signature* sig = &m->signatures[s];
    LiteRtSignature signature = NULL;
    m->num_signatures = s + 1; /* what free_model releases if this signature fails half way */
    ok = check(env, LiteRtGetModelSignature(m->model, s, &signature), "LiteRtGetModelSignature", path) &&
         check(env, LiteRtGetSignatureKey(signature, &sig->key), "LiteRtGetSignatureKey", path) &&
         check(env, LiteRtGetNumSignatureInputs(signature, &sig->num_inputs), "LiteRtGetNumSignatureInputs", path) &&
         check(env, LiteRtGetNumSignatureOutputs(signature, &sig->num_outputs), "LiteRtGetNumSignatureOutputs",
               path);
    if (ok) {
      sig->inputs = calloc(sig->num_inputs ? sig->num_inputs : 1, sizeof(Tensor));
      sig->outputs = calloc(sig->num_outputs ? sig->num_outputs : 1, sizeof(Tensor));
      if (sig->inputs == NULL || sig->outputs == NULL) {
        throw_java(env, "java/lang/OutOfMemoryError", "tensor table");
        ok = 0;
      }
    }
    for (size_t i = 0; ok && i < sig->num_inputs; i++) {
      ok = describe(env, m, s, signature, 0, i, &sig->inputs[i]);
    }
    for (size_t i = 0; ok && i < sig->num_outputs; i++) {
      ok = describe(env, m, s, signature, 1, i, &sig->outputs[i]);
    }
  }
  (*env)->ReleaseStringUTFChars(env, jpath, path);
  if (!ok) {
    free_model(m);
    return 0;
  }
  return (jlong)(intptr_t)m;
}

JNIEXPORT jint JNICALL Java_dev_clipedge_clip_runtime_LiteRtJvmModel_nativeSignatureCount(JNIEnv* env,
                                                                                          jclass cls, jlong h) {
  (void)cls;
  Model* m = handle(env, h);
  return m == NULL ? 0 : (jint)m->num_signatures;
}

JNIEXPORT jstring JNICALL Java_dev_clipedge_clip_runtime_LiteRtJvmModel_nativeSignatureKey(JNIEnv* env, jclass cls,
                                                                                           jlong h, jint signature) {
  (void)cls;
  Model* m = handle(env, h);
  Signature* sig = m == NULL ? NULL : signature_at(env, m, signature);
  return sig == NULL ? NULL : (*env)->NewStringUTF(env, sig->key);
}

JNIEXPORT jint JNICALL Java_dev_clipedge_clip_runtime_LiteRtJvmModel_nativeCount(JNIEnv* env, jclass cls, jlong h,
                                                                                 jint signature, jboolean output) {
  (void)cls;
  Model* m = handle(env, h);
  Signature* sig = m == NULL ? NULL : signature_at(env, m, signature);
  return sig == NULL ? 0 : (jint)(output ? sig->num_outputs : sig->num_inputs);
}

/* Signature name of input or output `index`. */
JNIEXPORT jstring JNICALL Java_dev_clipedge_clip_runtime_LiteRtJvmModel_nativeName(JNIEnv* env, jclass cls, jlong h,
                                                                                   jint signature, jboolean output,
                                                                                   jint index) {
  (void)cls;
  Model* m = handle(env, h);
  Tensor* t = m == NULL ? NULL : tensor_at(env, m, signature, output, index);
  return t == NULL ? NULL : (*env)->NewStringUTF(env, t->name);
}

/* {LiteRtElementType, byte size, dimension 0, dimension 1, ...} of input or output `index`. */
JNIEXPORT jlongArray JNICALL Java_dev_clipedge_clip_runtime_LiteRtJvmModel_nativeType(JNIEnv* env, jclass cls,
                                                                                      jlong h, jint signature,
                                                                                      jboolean output, jint index) {
  (void)cls;
  Model* m = handle(env, h);
  Tensor* t = m == NULL ? NULL : tensor_at(env, m, signature, output, index);
  if (t == NULL) {
    return NULL;
  }
  unsigned rank = t->type.layout.rank;
  jlong values[2 + LITERT_TENSOR_MAX_RANK];
  values[0] = t->type.element_type;
  values[1] = (jlong)t->bytes;
  for (unsigned i = 0; i < rank && i < LITERT_TENSOR_MAX_RANK; i++) {
    values[2 + i] = t->type.layout.dimensions[i];
  }
  jsize length = (jsize)(2 + (rank < LITERT_TENSOR_MAX_RANK ? rank : LITERT_TENSOR_MAX_RANK));
  jlongArray result = (*env)->NewLongArray(env, length);
  if (result != NULL) {
    (*env)->SetLongArrayRegion(env, result, 0, length, values);
  }
  return result;
}

/* Copies `buffer` (a direct ByteBuffer of exactly the tensor's size) into or out of the tensor's host buffer. */
static int transfer(JNIEnv* env, Tensor* t, jobject buffer, int to_tensor) {
  void* data = buffer == NULL ? NULL : (*env)->GetDirectBufferAddress(env, buffer);
  jlong capacity = buffer == NULL ? -1 : (*env)->GetDirectBufferCapacity(env, buffer);
  if (data == NULL || capacity != (jlong)t->bytes) {
    char message[512];
    snprintf(message, sizeof message, "%s %s needs a direct ByteBuffer of %zu bytes, got %s%lld",
             to_tensor ? "input" : "output", t->name, t->bytes, data == NULL ? "no direct buffer " : "",
             data == NULL ? 0LL : (long long)capacity);
    throw_java(env, "java/lang/IllegalArgumentException", message);
    return 0;
  }
  void* host = NULL;
  if (!check(env,
             LiteRtLockTensorBuffer(t->buffer, &host,
                                    to_tensor ? kLiteRtTensorBufferLockModeWrite : kLiteRtTensorBufferLockModeRead),
             "LiteRtLockTensorBuffer", t->name)) {
    return 0;
  }
  if (to_tensor) {
    memcpy(host, data, t->bytes);
  } else {
    memcpy(data, host, t->bytes);
  }
  return check(env, LiteRtUnlockTensorBuffer(t->buffer), "LiteRtUnlockTensorBuffer", t->name);
}

JNIEXPORT void JNICALL Java_dev_clipedge_clip_runtime_LiteRtJvmModel_nativeRun(JNIEnv* env, jclass cls, jlong h,
                                                                               jint signature, jobjectArray inputs,
                                                                               jobjectArray outputs) {
  (void)cls;
  Model* m = handle(env, h);
  Signature* sig = m == NULL ? NULL : signature_at(env, m, signature);
  if (sig == NULL) {
    return;
  }
  if (inputs == NULL || outputs == NULL || (size_t)(*env)->GetArrayLength(env, inputs) != sig->num_inputs ||
      (size_t)(*env)->GetArrayLength(env, outputs) != sig->num_outputs) {
    char message[512];
    snprintf(message, sizeof message, "signature %s takes %zu input and %zu output buffers", sig->key,
             sig->num_inputs, sig->num_outputs);
    throw_java(env, "java/lang/IllegalArgumentException", message);
    return;
  }
  for (size_t i = 0; i < sig->num_inputs; i++) {
    jobject buffer = (*env)->GetObjectArrayElement(env, inputs, (jsize)i);
    int ok = transfer(env, &sig->inputs[i], buffer, 1);
    (*env)->DeleteLocalRef(env, buffer);
    if (!ok) {
      return;
    }
  }
  /* The Tensor table is not an array of buffers, so gather them (a few pointers, on the stack). */
  LiteRtTensorBuffer in[sig->num_inputs ? sig->num_inputs : 1];
  LiteRtTensorBuffer out[sig->num_outputs ? sig->num_outputs : 1];
  for (size_t i = 0; i < sig->num_inputs; i++) in[i] = sig->inputs[i].buffer;
  for (size_t i = 0; i < sig->num_outputs; i++) out[i] = sig->outputs[i].buffer;
  if (!check(env, LiteRtRunCompiledModel(m->compiled, (LiteRtParamIndex)signature, sig->num_inputs, in,
                                         sig->num_outputs, out),
             "LiteRtRunCompiledModel", sig->key)) {
    return;
  }
  for (size_t i = 0; i < sig->num_outputs; i++) {
    jobject buffer = (*env)->GetObjectArrayElement(env, outputs, (jsize)i);
    int ok = transfer(env, &sig->outputs[i], buffer, 0);
    (*env)->DeleteLocalRef(env, buffer);
    if (!ok) {
      return;
    }
  }
}

JNIEXPORT void JNICALL Java_dev_clipedge_clip_runtime_LiteRtJvmModel_nativeClose(JNIEnv* env, jclass cls,
                                                                                 jlong h) {
  (void)env;
  (void)cls;
  free_model((Model*)(intptr_t)h); /* h == 0 (already closed) is a no-op */
}
