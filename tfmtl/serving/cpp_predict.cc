// Run signatures of a SavedModel through TensorFlow's C SavedModel loader and
// Session: the runtime TF Serving links, with no Python in the process.
//
// Built and driven by tfmtl/serving/cpp.py; uses only TensorFlow's C API.
//
//   cpp_predict EXPORT_DIR REQUEST OUTPUT [--repeat N] [--config CONFIG_PROTO_FILE]
//
// REQUEST (little-endian): "TFMTLRQ1", u32 runs; per run: str name, u32 inputs;
// per input: str tensor ("op:index"), u32 TF_DataType, u32 rank, i64 dims[rank],
// values (numbers: raw; strings: u64 length + bytes each); u32 outputs; per
// output: str tensor. A str is u32 length + bytes.
// OUTPUT: "TFMTLRS1"; per run, per output: u32 TF_DataType, u32 rank,
// i64 dims[rank], values encoded as in REQUEST.
// With --repeat N, each run is timed N more times after the first and a line
// "latency_us NAME t1 t2 ..." is printed per run (in-session microseconds).
// Errors: "CODE_NAME: message" on stderr and exit status 2.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <string>
#include <vector>

#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tstring.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the request and output files are little-endian");

namespace {

const char* kCodes[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                        "UNAUTHENTICATED"};

[[noreturn]] void Fail(const std::string& what, TF_Status* status) {
  TF_Code code = TF_GetCode(status);
  const char* name = (code >= 0 && code <= 16) ? kCodes[code] : "UNKNOWN";
  fprintf(stderr, "%s: %s: %s\n", name, what.c_str(), TF_Message(status));
  exit(2);
}

[[noreturn]] void Die(const std::string& message) {
  fprintf(stderr, "INVALID_ARGUMENT: %s\n", message.c_str());
  exit(2);
}

struct Reader {
  FILE* file;
  void Bytes(void* out, size_t n) {
    if (n && fread(out, 1, n, file) != n) Die("request file is truncated");
  }
  uint32_t U32() { uint32_t v; Bytes(&v, 4); return v; }
  int64_t I64() { int64_t v; Bytes(&v, 8); return v; }
  uint64_t U64() { uint64_t v; Bytes(&v, 8); return v; }
  std::string Str() { std::string s(U32(), '\0'); Bytes(&s[0], s.size()); return s; }
};

struct Writer {
  FILE* file;
  void Bytes(const void* data, size_t n) {
    if (n && fwrite(data, 1, n, file) != n) Die("cannot write the output file");
  }
  void U32(uint32_t v) { Bytes(&v, 4); }
  void I64(int64_t v) { Bytes(&v, 8); }
  void U64(uint64_t v) { Bytes(&v, 8); }
};

int64_t Elements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

TF_Output Resolve(TF_Graph* graph, const std::string& tensor) {
  size_t colon = tensor.rfind(':');
  std::string op = colon == std::string::npos ? tensor : tensor.substr(0, colon);
  int index = colon == std::string::npos ? 0 : atoi(tensor.c_str() + colon + 1);
  TF_Operation* operation = TF_GraphOperationByName(graph, op.c_str());
  if (operation == nullptr) Die("the graph has no tensor " + tensor);
  return TF_Output{operation, index};
}

TF_Tensor* ReadTensor(Reader& in) {
  TF_DataType dtype = static_cast<TF_DataType>(in.U32());
  std::vector<int64_t> dims(in.U32());
  for (auto& d : dims) d = in.I64();
  int64_t n = Elements(dims);
  if (dtype == TF_STRING) {
    TF_Tensor* tensor = TF_AllocateTensor(TF_STRING, dims.data(), dims.size(), n * sizeof(TF_TString));
    TF_TString* strings = static_cast<TF_TString*>(TF_TensorData(tensor));
    std::string value;
    for (int64_t i = 0; i < n; ++i) {
      value.resize(in.U64());
      in.Bytes(&value[0], value.size());
      TF_StringInit(&strings[i]);
      TF_StringCopy(&strings[i], value.data(), value.size());
    }
    return tensor;
  }
  size_t bytes = n * TF_DataTypeSize(dtype);
  TF_Tensor* tensor = TF_AllocateTensor(dtype, dims.data(), dims.size(), bytes);
  in.Bytes(TF_TensorData(tensor), bytes);
  return tensor;
}

// A tensor this program allocated: its strings are freed by hand (TF_DeleteTensor does not).
void DeleteInput(TF_Tensor* tensor) {
  if (TF_TensorType(tensor) == TF_STRING) {
    TF_TString* strings = static_cast<TF_TString*>(TF_TensorData(tensor));
    int64_t n = TF_TensorElementCount(tensor);
    for (int64_t i = 0; i < n; ++i) TF_StringDealloc(&strings[i]);
  }
  TF_DeleteTensor(tensor);
}

void WriteTensor(Writer& out, const TF_Tensor* tensor) {
  TF_DataType dtype = TF_TensorType(tensor);
  out.U32(dtype);
  int rank = TF_NumDims(tensor);
  out.U32(rank);
  std::vector<int64_t> dims(rank);
  for (int i = 0; i < rank; ++i) out.I64(dims[i] = TF_Dim(tensor, i));
  int64_t n = Elements(dims);
  if (dtype == TF_STRING) {
    const TF_TString* strings = static_cast<const TF_TString*>(TF_TensorData(tensor));
    for (int64_t i = 0; i < n; ++i) {
      out.U64(TF_StringGetSize(&strings[i]));
      out.Bytes(TF_StringGetDataPointer(&strings[i]), TF_StringGetSize(&strings[i]));
    }
    return;
  }
  out.Bytes(TF_TensorData(tensor), TF_TensorByteSize(tensor));
}

struct Run {
  std::string name;
  std::vector<TF_Output> inputs, outputs;
  std::vector<TF_Tensor*> values;
};

double Microseconds(const timespec& a, const timespec& b) {
  return (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
}

void Execute(TF_Session* session, Run& run, std::vector<TF_Tensor*>& results, TF_Status* status) {
  results.assign(run.outputs.size(), nullptr);
  TF_SessionRun(session, nullptr, run.inputs.data(), run.values.data(), run.inputs.size(), run.outputs.data(),
                results.data(), run.outputs.size(), nullptr, 0, nullptr, status);
  if (TF_GetCode(status) != TF_OK) Fail("signature " + run.name, status);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) Die("usage: cpp_predict EXPORT_DIR REQUEST OUTPUT [--repeat N] [--config FILE]");
  int repeat = 0;
  std::string config;
  if ((argc - 4) % 2 != 0) Die(std::string("option ") + argv[argc - 1] + " needs a value");
  for (int i = 4; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--repeat") == 0) {
      repeat = atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "--config") == 0) {
      FILE* file = fopen(argv[i + 1], "rb");
      if (file == nullptr) Die(std::string("cannot open ") + argv[i + 1]);
      char chunk[4096];
      size_t n;
      while ((n = fread(chunk, 1, sizeof chunk, file)) > 0) config.append(chunk, n);
      fclose(file);
    } else {
      Die(std::string("unknown option ") + argv[i]);
    }
  }

  TF_Status* status = TF_NewStatus();
  TF_SessionOptions* options = TF_NewSessionOptions();
  if (!config.empty()) {
    TF_SetConfig(options, config.data(), config.size(), status);
    if (TF_GetCode(status) != TF_OK) Fail("session config", status);
  }
  TF_Graph* graph = TF_NewGraph();
  const char* tags[] = {"serve"};
  TF_Session* session = TF_LoadSessionFromSavedModel(options, nullptr, argv[1], tags, 1, graph, nullptr, status);
  if (TF_GetCode(status) != TF_OK) Fail(std::string("loading ") + argv[1], status);

  FILE* request = fopen(argv[2], "rb");
  if (request == nullptr) Die(std::string("cannot open ") + argv[2]);
  Reader in{request};
  char magic[8];
  in.Bytes(magic, 8);
  if (memcmp(magic, "TFMTLRQ1", 8) != 0) Die("not a request file");
  std::vector<Run> runs(in.U32());
  for (Run& run : runs) {
    run.name = in.Str();
    uint32_t inputs = in.U32();
    for (uint32_t i = 0; i < inputs; ++i) {
      run.inputs.push_back(Resolve(graph, in.Str()));
      run.values.push_back(ReadTensor(in));
    }
    uint32_t outputs = in.U32();
    for (uint32_t i = 0; i < outputs; ++i) run.outputs.push_back(Resolve(graph, in.Str()));
  }
  fclose(request);

  FILE* output = fopen(argv[3], "wb");
  if (output == nullptr) Die(std::string("cannot open ") + argv[3]);
  Writer out{output};
  out.Bytes("TFMTLRS1", 8);
  std::vector<TF_Tensor*> results;
  for (Run& run : runs) {
    Execute(session, run, results, status);
    for (TF_Tensor* tensor : results) {
      WriteTensor(out, tensor);
      TF_DeleteTensor(tensor);
    }
    if (repeat > 0) {
      printf("latency_us %s", run.name.c_str());
      for (int i = 0; i < repeat; ++i) {
        timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        Execute(session, run, results, status);
        clock_gettime(CLOCK_MONOTONIC, &end);
        for (TF_Tensor* tensor : results) TF_DeleteTensor(tensor);
        printf(" %.2f", Microseconds(start, end));
      }
      printf("\n");
    }
    for (TF_Tensor* tensor : run.values) DeleteInput(tensor);
  }
  if (fclose(output) != 0) Die("cannot write the output file");

  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteGraph(graph);
  TF_DeleteSessionOptions(options);
  TF_DeleteStatus(status);
  return 0;
}
