package dev.clipedge.clip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.Contract;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.zip.CRC32;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ImageFilesTest {
  private static final Contract.Image LIMITS = Contract.PRE_CONTRACT.image();

  @TempDir Path dir;

  private Path write(String name, BufferedImage image, String format) throws IOException {
    Path file = dir.resolve(name);
    assertTrue(ImageIO.write(image, format, file.toFile()), "no " + format + " writer");
    return file;
  }

  @Test
  void pngWithAlphaRoundTripsExactly() throws IOException {
    BufferedImage image = new BufferedImage(7, 5, BufferedImage.TYPE_INT_ARGB);
    Random random = new Random(5);
    int[] pixels = new int[35];
    for (int i = 0; i < pixels.length; i++) {
      pixels[i] = random.nextInt();
    }
    image.setRGB(0, 0, 7, 5, pixels, 0, 7);
    ImageFiles.Argb read = ImageFiles.read(write("a.png", image, "png"), LIMITS);
    assertEquals(7, read.width());
    assertEquals(5, read.height());
    assertArrayEquals(pixels, read.pixels());
  }

  @Test
  void greyValuesAreNotGammaConverted() throws IOException {
    // Java's grey colour space is linear, so getRGB would turn 100 into about 170; PIL and TF keep 100.
    BufferedImage image = new BufferedImage(3, 1, BufferedImage.TYPE_BYTE_GRAY);
    image.getRaster().setSamples(0, 0, 3, 1, 0, new int[] {0, 100, 255});
    int[] argb = ImageFiles.read(write("g.png", image, "png"), LIMITS).pixels();
    assertArrayEquals(new int[] {0xFF000000, 0xFF646464, 0xFFFFFFFF}, argb);
  }

  @Test
  void bmpAndGifDecode() throws IOException {
    BufferedImage image = new BufferedImage(4, 2, BufferedImage.TYPE_3BYTE_BGR);
    int[] pixels = {0xFF102030, 0xFFFFFFFF, 0xFF000000, 0xFFABCDEF, 0xFF7F7F7F, 0xFF010203, 0xFFFF0000, 0xFF00FF00};
    image.setRGB(0, 0, 4, 2, pixels, 0, 4);
    assertArrayEquals(pixels, ImageFiles.read(write("b.bmp", image, "bmp"), LIMITS).pixels());
    ImageFiles.Argb gif = ImageFiles.read(write("c.gif", image, "gif"), LIMITS);
    assertEquals(4, gif.width());
    assertEquals(2, gif.height());
  }

  @Test
  void errorsNameTheFile() throws IOException {
    Path missing = dir.resolve("missing.png");
    assertMessage(missing, "no such file");

    Path empty = Files.write(dir.resolve("empty.jpg"), new byte[0]);
    assertMessage(empty, "is empty (0 bytes)");

    Path text = Files.write(dir.resolve("text.png"), "hello".getBytes(StandardCharsets.US_ASCII));
    assertMessage(text, "is not a JPEG, PNG, GIF or BMP file; its first bytes are 68 65 6c 6c 6f");

    BufferedImage image = new BufferedImage(64, 64, BufferedImage.TYPE_3BYTE_BGR);
    for (String format : new String[] {"png", "jpeg"}) {
      byte[] whole = Files.readAllBytes(write("whole." + format, image, format));
      Path truncated = Files.write(dir.resolve("cut." + format), Arrays.copyOf(whole, whole.length / 2));
      assertMessage(truncated, "cannot decode");
    }
    assertMessage(dir, "not a regular file");
  }

  @Test
  void declaredSizeIsCheckedBeforeDecoding() throws IOException {
    // A PNG that is only a header claiming 70000 x 70000 pixels: refused from the header, nothing decoded.
    Path huge = Files.write(dir.resolve("huge.png"), pngHeaderOnly(70_000, 70_000));
    assertMessage(huge, "has a side longer than 65535 pixels");
    Path big = Files.write(dir.resolve("big.png"), pngHeaderOnly(20_000, 20_000));
    assertMessage(big, "is larger than 100 megapixels");
    // An export's own limits, from its contract.
    Contract.Image small = new Contract.Image(640, 300_000, Contract.RESIZE_RULE);
    assertMessage(Files.write(dir.resolve("wide.png"), pngHeaderOnly(641, 1)), "has a side longer than 640 pixels",
        small);
    assertMessage(Files.write(dir.resolve("area.png"), pngHeaderOnly(600, 600)), "is larger than 300000 pixels",
        small);
  }

  @Test
  void pngCriticalChunkCrcsAreCheckedAsLibpngDoesAncillaryOnesAreNot() throws IOException {
    BufferedImage image = new BufferedImage(6, 4, BufferedImage.TYPE_INT_RGB);
    image.setRGB(2, 1, 0x336699);
    byte[] good = Files.readAllBytes(write("good.png", image, "png"));
    byte[] badHeader = good.clone();
    badHeader[8 + 4 + 4 + 13] ^= 1; // the IHDR chunk's CRC: signature, length, type, 13 bytes of data
    Path header = Files.write(dir.resolve("header.png"), badHeader);
    assertMessage(header, "PNG chunk IHDR has a wrong CRC");
    byte[] badData = good.clone();
    int idat = indexOf(good, "IDAT".getBytes(StandardCharsets.US_ASCII));
    badData[idat + 4] ^= 1; // the first byte of the compressed data, its CRC left as it was
    assertMessage(Files.write(dir.resolve("data.png"), badData), "PNG chunk IDAT has a wrong CRC");
    // An ancillary chunk (tEXt) with a wrong CRC after IHDR: libpng drops it, and the pixels are the image's.
    ByteArrayOutputStream withText = new ByteArrayOutputStream();
    int afterHeader = 8 + 4 + 4 + 13 + 4;
    withText.write(good, 0, afterHeader);
    byte[] text = "tEXtComment\0hello".getBytes(StandardCharsets.ISO_8859_1);
    withText.writeBytes(ByteBuffer.allocate(4).putInt(text.length - 4).array());
    withText.writeBytes(text);
    withText.writeBytes(new byte[] {1, 2, 3, 4});
    withText.write(good, afterHeader, good.length - afterHeader);
    ImageFiles.Argb read = ImageFiles.read(Files.write(dir.resolve("text.png"), withText.toByteArray()), LIMITS);
    assertEquals(0xFF336699, read.pixels()[1 * 6 + 2]);
  }

  private static int indexOf(byte[] haystack, byte[] needle) {
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      if (Arrays.equals(haystack, i, i + needle.length, needle, 0, needle.length)) {
        return i + needle.length;
      }
    }
    throw new AssertionError("not found");
  }

  private static void assertMessage(Path file, String part) {
    assertMessage(file, part, LIMITS);
  }

  private static void assertMessage(Path file, String part, Contract.Image limits) {
    ImageFiles.ImageFileException e = assertThrows(ImageFiles.ImageFileException.class,
        () -> ImageFiles.read(file, limits));
    assertTrue(e.getMessage().startsWith("image " + file), e.getMessage());
    assertTrue(e.getMessage().contains(part), e.getMessage());
  }

  /** PNG signature and an IHDR chunk (8-bit RGB) with a valid CRC, and no image data. */
  private static byte[] pngHeaderOnly(int width, int height) {
    ByteBuffer ihdr = ByteBuffer.allocate(17);
    ihdr.put("IHDR".getBytes(StandardCharsets.US_ASCII)).putInt(width).putInt(height)
        .put((byte) 8).put((byte) 2).put((byte) 0).put((byte) 0).put((byte) 0);
    CRC32 crc = new CRC32();
    crc.update(ihdr.array());
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.writeBytes(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'});
    out.writeBytes(ByteBuffer.allocate(4).putInt(13).array());
    out.writeBytes(ihdr.array());
    out.writeBytes(ByteBuffer.allocate(4).putInt((int) crc.getValue()).array());
    return out.toByteArray();
  }
}
