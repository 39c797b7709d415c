package dev.clipedge.clip.index;

import dev.clipedge.clip.Manifest;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * The model that made an index's rows: the SHA-256 of the export's image encoder file and its variant, with the
 * export's name for messages only. Two fingerprints are the same model when sha256 and variant agree.
 */
public record Fingerprint(byte[] imageEncoderSha256, String variant, String exportName) {
  public Fingerprint {
    if (imageEncoderSha256.length != IndexFormat.SHA256_BYTES) {
      throw new IllegalArgumentException("a SHA-256 has 32 bytes, got " + imageEncoderSha256.length);
    }
    if (!variant.matches("[\\x21-\\x7e]{1," + IndexFormat.VARIANT_BYTES + "}")) {
      throw new IllegalArgumentException("variant '" + variant + "' is not 1 to 32 printable ASCII characters");
    }
    imageEncoderSha256 = imageEncoderSha256.clone();
  }

  /** The image encoder of {@code variant} as {@code manifest} lists it (the file itself is checked when opened). */
  public static Fingerprint of(Manifest manifest, String variant) {
    Manifest.Artifact encoder = manifest.artifact("image", variant);
    return new Fingerprint(HexFormat.of().parseHex(encoder.sha256()), variant, manifest.name());
  }

  @Override
  public byte[] imageEncoderSha256() {
    return imageEncoderSha256.clone();
  }

  public boolean sameModel(Fingerprint other) {
    return variant.equals(other.variant) && Arrays.equals(imageEncoderSha256, other.imageEncoderSha256);
  }

  /** "image_encoder_V.tflite sha256 HEX of export 'NAME'", for messages naming both sides of a mismatch. */
  @Override
  public String toString() {
    return "image_encoder_" + variant + ".tflite sha256 " + HexFormat.of().formatHex(imageEncoderSha256)
        + " of export '" + exportName + "'";
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof Fingerprint && sameModel((Fingerprint) other)
        && exportName.equals(((Fingerprint) other).exportName);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(imageEncoderSha256) * 31 + variant.hashCode();
  }
}
