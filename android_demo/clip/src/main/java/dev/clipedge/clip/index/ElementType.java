package dev.clipedge.clip.index;

import java.util.Locale;

/** How an index stores its embeddings (docs/device_index.md, header field "element type"). */
public enum ElementType {
  /** IEEE 754 binary16, rounded to nearest even from the float32 embedding. */
  FLOAT16(1, 2),
  /** q = clamp(rint(d / s), -127, 127) of d = e - mu (the index's mean), a float32 scale s = max|d| / 127 per row. */
  INT8(2, 1);

  /** The header's code for this type. */
  final int code;
  /** Bytes per element in the embeddings section. */
  final int bytes;

  ElementType(int code, int bytes) {
    this.code = code;
    this.bytes = bytes;
  }

  /** The type with header code {@code code}, or null. */
  static ElementType fromCode(long code) {
    for (ElementType type : values()) {
      if (type.code == code) {
        return type;
      }
    }
    return null;
  }

  /** "float16" or "int8", as the command line names them. */
  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** The type a command line names ("float16", "int8"); anything else is an IllegalArgumentException. */
  public static ElementType fromLabel(String label) {
    for (ElementType type : values()) {
      if (type.label().equals(label)) {
        return type;
      }
    }
    throw new IllegalArgumentException("element type must be float16 or int8, got '" + label + "'");
  }
}
