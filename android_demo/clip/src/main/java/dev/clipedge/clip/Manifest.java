package dev.clipedge.clip;

import dev.clipedge.clip.runtime.DType;
import dev.clipedge.clip.runtime.TensorInfo;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.stream.Collectors;

/**
 * An export's DIR/manifest.json (written by converters/manifest.py): the artifacts with their checksums and tensor
 * signatures, the model config, the logit multiplier, and the contract (image limits, special tokens, signature
 * key, layout). Everything shape-related the device side needs (image resolution, context length, embedding size)
 * comes from here, never from constants.
 *
 * <p>A manifest carries its format_version; one newer than {@link Contract#FORMAT_VERSION} is refused, one without
 * it (written before the contract) reads with {@link Contract#PRE_CONTRACT}. Every problem is an
 * {@link ExportException} with a one-line message naming the file or item.
 */
public final class Manifest {
  /** A manifest is metadata: anything this large is not one (checked before reading it into memory). */
  private static final long MAX_MANIFEST_BYTES = 64L << 20;

  /** A missing, corrupt or inconsistent export; the message is one line naming the problem. */
  public static final class ExportException extends RuntimeException {
    public ExportException(String message) {
      super(message);
    }
  }

  /** Per-tensor or per-channel affine quantisation: real = scale * (quantised - zeroPoint). */
  public record Quantization(double[] scales, long[] zeroPoints) {
    public Quantization {
      scales = scales.clone();
      zeroPoints = zeroPoints.clone();
    }

    public boolean perTensor() {
      return scales.length == 1;
    }

    public double scale() {
      return scales[0];
    }

    public long zeroPoint() {
      return zeroPoints[0];
    }
  }

  /** One tensor as the manifest lists it; {@code quantization} is null for unquantised tensors. */
  public record Tensor(String name, DType dtype, int[] shape, Quantization quantization) {
    public Tensor {
      shape = shape.clone();
    }

    @Override
    public int[] shape() {
      return shape.clone();
    }

    /** Same element type and shape as the tensor the runtime reports (names differ: signature vs graph). */
    public boolean matches(TensorInfo runtime) {
      return dtype == runtime.dtype() && Arrays.equals(shape, runtime.shape());
    }

    @Override
    public String toString() {
      return name + " " + dtype + " " + Arrays.toString(shape);
    }
  }

  /**
   * One signature of a multi-signature artifact: a text encoder has one per length bucket, each taking
   * {@code length} token ids (the full context length among them).
   */
  public record Signature(String key, int length, List<Tensor> inputs, List<Tensor> outputs) {}

  /**
   * A file of the export; TFLite encoders also have tower, variant and tensors (others have null and empty). The
   * top-level tensors are the default signature's; {@code signatures} lists every signature when the exporter
   * wrote several (text encoders with length buckets), else it is empty.
   */
  public record Artifact(Path file, String path, String sha256, long bytes, String tower, String variant,
                         List<Tensor> inputs, List<Tensor> outputs, List<Signature> signatures) {
    /**
     * The file, after checking that its size and sha256 are the manifest's (read in blocks, never whole):
     * a truncated download, a tampered or swapped model is refused before any runtime parses it.
     */
    public Path verified() {
      long size;
      try {
        size = Files.size(file);
      } catch (NoSuchFileException e) {
        throw new ExportException(file + ": missing (listed in the export's " + Contract.MANIFEST + ")");
      } catch (IOException e) {
        throw new ExportException(file + ": cannot read: " + e.getMessage());
      }
      if (size != bytes) {
        throw new ExportException(file + ": size " + size + " bytes does not match the manifest's " + bytes
            + " (truncated or replaced file)");
      }
      String actual = fileSha256(file);
      if (!actual.equals(sha256)) {
        throw new ExportException(file + ": sha256 " + actual + " does not match the manifest's " + sha256
            + " (corrupt or tampered file)");
      }
      return file;
    }
  }

  private final Path directory;
  private final String name;
  private final int formatVersion;
  private final Contract contract;
  private final Map<String, Object> config;
  private final Double logitMultiplier;
  private final List<Artifact> artifacts;
  private final Map<String, String> rejectedVariants;

  private Manifest(Path directory, String name, int formatVersion, Contract contract, Map<String, Object> config,
                   Double logitMultiplier, List<Artifact> artifacts, Map<String, String> rejectedVariants) {
    this.directory = directory;
    this.name = name;
    this.formatVersion = formatVersion;
    this.contract = contract;
    this.config = config;
    this.logitMultiplier = logitMultiplier;
    this.artifacts = artifacts;
    this.rejectedVariants = rejectedVariants;
  }

  /** Reads DIR/manifest.json; does not yet read the artifacts (see {@link Artifact#verified()}). */
  public static Manifest load(Path directory) {
    if (!Files.isDirectory(directory)) {
      throw new ExportException("export " + directory + " does not exist or is not a folder");
    }
    Path file = directory.resolve(Contract.MANIFEST);
    String text;
    try {
      long size = Files.size(file);
      if (size > MAX_MANIFEST_BYTES) {
        throw new ExportException(file + ": " + size + " bytes is too large for a manifest");
      }
      text = new String(Files.readAllBytes(file), StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new ExportException(directory + " is not an export: it has no " + Contract.MANIFEST);
    } catch (IOException e) {
      throw new ExportException(file + ": cannot read: " + e.getMessage());
    }
    Object root;
    try {
      root = Json.parse(text);
    } catch (Json.JsonException e) {
      throw new ExportException(file + " is corrupt: " + e.getMessage());
    }
    return new Reader(file).manifest(directory, root);
  }

  public Path directory() {
    return directory;
  }

  public String name() {
    return name;
  }

  /** The manifest's format_version; 0 for a manifest written before it (and the contract) existed. */
  public int formatVersion() {
    return formatVersion;
  }

  /** What the export states about processing its inputs, or {@link Contract#PRE_CONTRACT} for format 0. */
  public Contract contract() {
    return contract;
  }

  /** The model config (image_resolution, context_length, embed_dim, ...), as written by the exporter. */
  public Map<String, Object> config() {
    return config;
  }

  public List<Artifact> artifacts() {
    return artifacts;
  }

  /** What cosine similarities are multiplied by to give logits, as serving_default does. */
  public double logitMultiplier() {
    if (logitMultiplier == null) {
      throw new ExportException(directory.resolve(Contract.MANIFEST) + " has no logit_multiplier (exported before it "
          + "was recorded); re-export to rank labels");
    }
    return logitMultiplier;
  }

  /** The variants the export has for {@code tower} ("image" or "text"), in manifest order. */
  public List<String> variants(String tower) {
    return artifacts.stream().filter(a -> tower.equals(a.tower())).map(Artifact::variant).distinct()
        .collect(Collectors.toList());
  }

  /**
   * Variants the exporter's parity gate rejected (manifest.json's "rejected" section): not shipped, their files
   * kept under rejected/ and never listed as artifacts. Variant to its shortfalls, one line.
   */
  public Map<String, String> rejectedVariants() {
    return rejectedVariants;
  }

  /** The {@code tower} encoder of {@code variant}; an unknown or rejected variant lists the available ones. */
  public Artifact artifact(String tower, String variant) {
    for (Artifact artifact : artifacts) {
      if (tower.equals(artifact.tower()) && variant.equals(artifact.variant())) {
        return artifact;
      }
    }
    List<String> available = variants(tower);
    String why = rejectedVariants.containsKey(variant)
        ? " (the export rejected it: " + rejectedVariants.get(variant) + ")" : "";
    throw new ExportException("export " + directory + " has no " + tower + " encoder of variant '" + variant
        + "'" + why + "; available: " + (available.isEmpty() ? "none" : String.join(", ", available)));
  }

  /** The tokenizer's files (the contract's layout), each checked against the manifest. */
  public List<Path> verifiedTokenizerFiles() {
    Contract.Layout layout = contract.layout();
    return List.of(file(layout.vocab()).verified(), file(layout.merges()).verified(),
        file(layout.textCleaning()).verified());
  }

  /** An artifact by its path in the export (e.g. assets/vocab.json). */
  public Artifact file(String path) {
    for (Artifact artifact : artifacts) {
      if (artifact.path().equals(path)) {
        return artifact;
      }
    }
    throw new ExportException("export " + directory + " lists no " + path);
  }

  static String fileSha256(Path file) {
    MessageDigest digest;
    try {
      digest = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    byte[] block = new byte[1 << 20];
    try (InputStream in = Files.newInputStream(file)) {
      for (int n; (n = in.read(block)) > 0; ) {
        digest.update(block, 0, n);
      }
    } catch (IOException e) {
      throw new ExportException(file + ": cannot read: " + e.getMessage());
    }
    return HexFormat.of().formatHex(digest.digest());
  }

  /** Typed access to the parsed JSON; each error names the manifest and the JSON path of the bad item. */
  private static final class Reader {
    private final Path file;

    Reader(Path file) {
      this.file = file;
    }

    Manifest manifest(Path directory, Object root) {
      Map<String, Object> top = object(root, "the top level");
      int formatVersion = formatVersion(top);
      Contract contract = formatVersion == 0 ? Contract.PRE_CONTRACT
          : contract(object(require(top, "contract", ""), "contract"));
      String name = string(top, "name", "");
      Map<String, Object> config = Collections.unmodifiableMap(
          new LinkedHashMap<>(object(require(top, "config", ""), "config")));
      Object multiplier = top.get("logit_multiplier");
      Double logitMultiplier = multiplier == null ? null : number(multiplier, "logit_multiplier").doubleValue();
      // exp(the model's logit scale), capped by the export: anything else is not from an export.
      if (logitMultiplier != null && !(logitMultiplier > 0 && logitMultiplier <= contract.maxLogitScale())) {
        throw error("logit_multiplier is " + logitMultiplier + "; an export writes a value in (0, "
            + contract.maxLogitScale() + "]");
      }
      List<Object> entries = array(require(top, "artifacts", ""), "artifacts");
      List<Artifact> artifacts = new ArrayList<>();
      for (int i = 0; i < entries.size(); i++) {
        artifacts.add(artifact(directory, entries.get(i), "artifacts[" + i + "]"));
      }
      return new Manifest(directory, name, formatVersion, contract, config, logitMultiplier,
          Collections.unmodifiableList(artifacts), rejected(top.get("rejected")));
    }

    /** 0 when absent (a manifest from before the contract); a version newer than this code reads is refused. */
    private int formatVersion(Map<String, Object> top) {
      if (!top.containsKey("format_version")) {
        return 0;
      }
      Object value = top.get("format_version");
      if (!(value instanceof Long) || (Long) value < 1) {
        throw error("format_version is " + value + "; an export writes an integer from 1");
      }
      long version = (Long) value;
      if (version > Contract.FORMAT_VERSION) {
        throw new ExportException(file + ": format_version is " + version + ", newer than " + Contract.FORMAT_VERSION
            + ", the newest this reader knows: the export was written by a newer clip_edge; update android_demo's "
            + "clip library to read it");
      }
      return (int) version;
    }

    /** The "contract" section (converters/manifest.py), the parts this code uses. */
    private Contract contract(Map<String, Object> contract) {
      Map<String, Object> image = object(require(contract, "image", "contract"), "contract.image");
      Map<String, Object> text = object(require(contract, "text", "contract"), "contract.text");
      Map<String, Object> zeroShot = object(require(contract, "zero_shot", "contract"), "contract.zero_shot");
      Map<String, Object> signatures = object(require(contract, "signatures", "contract"), "contract.signatures");
      Map<String, Object> layout = object(require(contract, "layout", "contract"), "contract.layout");
      double maxLogitScale = number(require(zeroShot, "max_logit_scale", "contract.zero_shot"),
          "contract.zero_shot.max_logit_scale").doubleValue();
      if (!(maxLogitScale > 0) || Double.isInfinite(maxLogitScale)) {
        throw error("contract.zero_shot.max_logit_scale is " + maxLogitScale + "; it must be positive");
      }
      return new Contract(
          new Contract.Image((int) positive(image, "max_side", "contract.image", Integer.MAX_VALUE),
              positive(image, "max_pixels", "contract.image", Long.MAX_VALUE),
              string(image, "resize", "contract.image")),
          new Contract.Text(token(text, "start_token"), token(text, "end_token")),
          maxLogitScale, string(signatures, "default", "contract.signatures"),
          new Contract.Layout(string(layout, "vocab", "contract.layout"), string(layout, "merges", "contract.layout"),
              string(layout, "text_cleaning", "contract.layout")));
    }

    private Contract.Token token(Map<String, Object> text, String key) {
      String where = "contract.text." + key;
      Map<String, Object> token = object(require(text, key, "contract.text"), where);
      List<String> spellings = new ArrayList<>();
      for (Object spelling : array(require(token, "spellings", where), where + ".spellings")) {
        if (!(spelling instanceof String) || ((String) spelling).isEmpty()) {
          throw error(where + ".spellings holds " + spelling + "; a spelling is a non-empty string");
        }
        spellings.add((String) spelling);
      }
      if (spellings.isEmpty()) {
        throw error(where + ".spellings is empty");
      }
      long id = number(require(token, "id", where), where + ".id").longValue();
      if (id < 0 || id > Integer.MAX_VALUE) {
        throw error(where + ".id is " + id + "; a token id is a non-negative integer");
      }
      return new Contract.Token(spellings, OptionalInt.of((int) id));
    }

    /** map[key], an integer in 1..max. */
    private long positive(Map<String, Object> map, String key, String where, long max) {
      Object value = require(map, key, where);
      if (!(value instanceof Long) || (Long) value < 1 || (Long) value > max) {
        throw error(where + "." + key + " is " + value + "; expected an integer from 1 to " + max);
      }
      return (Long) value;
    }

    /** The "rejected" section (converters/manifest.py): {"variants": {variant: {"shortfalls": [...], ...}}}. */
    private Map<String, String> rejected(Object value) {
      if (value == null) {
        return Map.of();
      }
      Map<String, Object> variants = object(require(object(value, "rejected"), "variants", "rejected"),
          "rejected.variants");
      Map<String, String> rejected = new LinkedHashMap<>();
      for (Map.Entry<String, Object> entry : variants.entrySet()) {
        String where = "rejected.variants." + entry.getKey();
        List<Object> shortfalls = array(require(object(entry.getValue(), where), "shortfalls", where),
            where + ".shortfalls");
        rejected.put(entry.getKey(), shortfalls.stream().map(String::valueOf).collect(Collectors.joining("; ")));
      }
      return Collections.unmodifiableMap(rejected);
    }

    private Artifact artifact(Path directory, Object value, String where) {
      Map<String, Object> entry = object(value, where);
      String path = string(entry, "path", where);
      Path resolved = directory.resolve(path).normalize();
      // A manifest must not send us outside its export (../../etc/passwd, absolute paths).
      if (Path.of(path).isAbsolute() || !resolved.startsWith(directory.normalize())) {
        throw error(where + ".path '" + path + "' points outside the export");
      }
      String sha256 = string(entry, "sha256", where);
      if (!sha256.matches("[0-9a-f]{64}")) {
        throw error(where + ".sha256 is not 64 lowercase hex digits");
      }
      long bytes = number(require(entry, "bytes", where), where + ".bytes").longValue();
      Object tower = entry.get("tower");
      Object variant = entry.get("variant");
      if (tower == null && variant == null) {
        return new Artifact(resolved, path, sha256, bytes, null, null, List.of(), List.of(), List.of());
      }
      return new Artifact(resolved, path, sha256, bytes, string(entry, "tower", where),
          string(entry, "variant", where), tensors(entry, "inputs", where), tensors(entry, "outputs", where),
          signatures(entry.get("signatures"), where + ".signatures"));
    }

    private List<Signature> signatures(Object value, String where) {
      if (value == null) {
        return List.of();
      }
      List<Object> list = array(value, where);
      List<Signature> signatures = new ArrayList<>();
      for (int i = 0; i < list.size(); i++) {
        String at = where + "[" + i + "]";
        Map<String, Object> entry = object(list.get(i), at);
        long length = number(require(entry, "length", at), at + ".length").longValue();
        if (length < 1 || length > Integer.MAX_VALUE) {
          throw error(at + ".length is " + length + "; a token count must be positive");
        }
        String key = string(entry, "key", at);
        for (Signature earlier : signatures) {
          if (earlier.key().equals(key) || earlier.length() == length) {
            throw error(at + " repeats the key or length of signature '" + earlier.key() + "'");
          }
        }
        signatures.add(new Signature(key, (int) length, tensors(entry, "inputs", at), tensors(entry, "outputs", at)));
      }
      return Collections.unmodifiableList(signatures);
    }

    private List<Tensor> tensors(Map<String, Object> entry, String key, String where) {
      List<Object> list = array(require(entry, key, where), where + "." + key);
      List<Tensor> tensors = new ArrayList<>();
      for (int i = 0; i < list.size(); i++) {
        String at = where + "." + key + "[" + i + "]";
        Map<String, Object> tensor = object(list.get(i), at);
        DType dtype;
        try {
          dtype = DType.fromName(string(tensor, "dtype", at));
        } catch (IllegalArgumentException e) {
          throw error(at + ".dtype: " + e.getMessage());
        }
        List<Object> dims = array(require(tensor, "shape", at), at + ".shape");
        int[] shape = new int[dims.size()];
        for (int d = 0; d < shape.length; d++) {
          long dim = number(dims.get(d), at + ".shape").longValue();
          if (dim < 1 || dim > Integer.MAX_VALUE) {
            throw error(at + ".shape has dimension " + dim + "; static positive shapes only");
          }
          shape[d] = (int) dim;
        }
        tensors.add(new Tensor(string(tensor, "name", at), dtype, shape, quantization(tensor.get("quantization"),
            at + ".quantization", dtype)));
      }
      return Collections.unmodifiableList(tensors);
    }

    /** The integer range a zero point of `dtype` must lie in, or null when the type is not quantised. */
    private static long[] zeroPointRange(DType dtype) {
      return switch (dtype) {
        case INT8 -> new long[] {-128, 127};
        case UINT8 -> new long[] {0, 255};
        case INT16 -> new long[] {-32768, 32767};
        case INT32 -> new long[] {Integer.MIN_VALUE, Integer.MAX_VALUE};
        default -> null;
      };
    }

    private Quantization quantization(Object value, String where, DType dtype) {
      if (value == null) {
        return null;
      }
      long[] range = zeroPointRange(dtype);
      if (range == null) {
        throw error(where + " is given for a " + dtype + " tensor; only integer tensors are quantised");
      }
      Map<String, Object> q = object(value, where);
      List<Object> scales = array(require(q, "scales", where), where + ".scales");
      List<Object> zeroPoints = array(require(q, "zero_points", where), where + ".zero_points");
      if (scales.isEmpty() || scales.size() != zeroPoints.size()) {
        throw error(where + " needs as many zero_points as scales, at least one");
      }
      double[] s = new double[scales.size()];
      long[] z = new long[s.length];
      for (int i = 0; i < s.length; i++) {
        s[i] = number(scales.get(i), where + ".scales").doubleValue();
        Number zeroPoint = number(zeroPoints.get(i), where + ".zero_points");
        z[i] = zeroPoint.longValue();
        if (zeroPoint.doubleValue() != z[i]) {
          throw error(where + ".zero_points[" + i + "] is " + zeroPoint + "; zero points are integers");
        }
        if (!(s[i] > 0) || Double.isInfinite(s[i])) {
          throw error(where + ".scales[" + i + "] is " + s[i] + "; scales must be positive");
        }
        // A zero point is a value of the tensor's type (1e15 would make every dequantised value garbage).
        if (z[i] < range[0] || z[i] > range[1]) {
          throw error(where + ".zero_points[" + i + "] is " + z[i] + "; a " + dtype + " zero point lies in "
              + range[0] + ".." + range[1]);
        }
      }
      return new Quantization(s, z);
    }

    private Object require(Map<String, Object> map, String key, String where) {
      if (!map.containsKey(key) || map.get(key) == null) {
        throw error((where.isEmpty() ? "" : where + ".") + key + " is missing");
      }
      return map.get(key);
    }

    private String string(Map<String, Object> map, String key, String where) {
      Object value = require(map, key, where);
      if (!(value instanceof String)) {
        throw error((where.isEmpty() ? "" : where + ".") + key + " is not a string");
      }
      return (String) value;
    }

    private Number number(Object value, String where) {
      if (!(value instanceof Number)) {
        throw error(where + " is not a number");
      }
      return (Number) value;
    }

    @SuppressWarnings("unchecked")
    private Map<String, Object> object(Object value, String where) {
      if (!(value instanceof Map)) {
        throw error(where + " is not an object");
      }
      return (Map<String, Object>) value;
    }

    @SuppressWarnings("unchecked")
    private List<Object> array(Object value, String where) {
      if (!(value instanceof List)) {
        throw error(where + " is not an array");
      }
      return (List<Object>) value;
    }

    private ExportException error(String what) {
      return new ExportException(file + " is corrupt: " + what);
    }
  }
}
