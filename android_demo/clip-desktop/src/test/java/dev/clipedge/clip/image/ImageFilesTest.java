package dev.clipedge.clip.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.Contract;
import java.awt.image.BufferedImage;
import java.awt.image.DataBuffer;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.awt.image.WritableRaster;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.zip.CRC32;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.ImageOutputStream;
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
    // ImageIO writes it interlaced, which the JDK's reader misreads at 2 rows (ImageFiles.jdkMisreadsInterlacing).
    ImageFiles.Argb gif = ImageFiles.read(write("c.gif", image, "gif"), LIMITS);
    assertEquals(4, gif.width());
    assertEquals(2, gif.height());
    assertArrayEquals(pixels, gif.pixels());
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

  /** Inks of 8 x 8 blocks (whole JPEG blocks, so that the file holds them nearly exactly), as stored: C, M, Y, K. */
  private static final int[][] INKS = {{0, 0, 0, 255}, {255, 255, 255, 0}, {200, 40, 90, 180}, {30, 220, 128, 64},
      {255, 0, 0, 255}, {0, 128, 255, 128}};

  @Test
  void cmykJpegsAreReadAsAdobesInvertedCmykWithOrWithoutItsSegment() throws IOException {
    // The JDK writes four bands as plain CMYK without Adobe's segment; Pillow would read it as Adobe's
    // inverted CMYK all the same, and so does the SavedModel: R = K * C / 255 of the stored values, rounded down.
    byte[] plain = jpegOfBlocks(INKS);
    ImageFiles.Argb read = ImageFiles.read(Files.write(dir.resolve("plain.jpg"), plain), LIMITS);
    assertEquals(8 * INKS.length, read.width());
    for (int block = 0; block < INKS.length; block++) {
      int[] inks = INKS[block];
      int pixel = read.pixels()[4 * read.width() + 8 * block + 4]; // the middle of the block
      for (int channel = 0; channel < 3; channel++) {
        int expected = inks[3] * inks[channel] / 255;
        int actual = (pixel >> (16 - 8 * channel)) & 0xFF;
        assertTrue(Math.abs(actual - expected) <= 1, "block " + block + " channel " + channel + ": " + actual
            + " for " + expected);
      }
    }
    ImageFiles.Argb withSegment = ImageFiles.read(Files.write(dir.resolve("adobe.jpg"), withAdobeSegment(plain, 0)),
        LIMITS);
    assertArrayEquals(read.pixels(), withSegment.pixels());
  }

  @Test
  void ycckJpegsAreConvertedBackToCmyk() throws IOException {
    // The same inks stored as YCCK: Y, Cb, Cr of the inverted C, M, Y (JFIF's equations), then K, marked by
    // Adobe's segment with transform 2; libjpeg reads a transform it does not know (1 here) as YCCK too.
    int[][] ycck = new int[INKS.length][];
    for (int block = 0; block < INKS.length; block++) {
      double r = 255 - INKS[block][0];
      double g = 255 - INKS[block][1];
      double b = 255 - INKS[block][2];
      ycck[block] = new int[] {(int) Math.round(0.299 * r + 0.587 * g + 0.114 * b),
          (int) Math.round(Math.min(255, -0.168736 * r - 0.331264 * g + 0.5 * b + 128)),
          (int) Math.round(Math.min(255, 0.5 * r - 0.418688 * g - 0.081312 * b + 128)), INKS[block][3]};
    }
    byte[] plain = jpegOfBlocks(INKS);
    int[] cmyk = ImageFiles.read(Files.write(dir.resolve("cmyk.jpg"), plain), LIMITS).pixels();
    byte[] stored = jpegOfBlocks(ycck);
    int[] converted = ImageFiles.read(Files.write(dir.resolve("ycck.jpg"), withAdobeSegment(stored, 2)), LIMITS)
        .pixels();
    for (int i = 0; i < cmyk.length; i++) {
      for (int shift = 0; shift < 24; shift += 8) {
        int difference = ((cmyk[i] >> shift) & 0xFF) - ((converted[i] >> shift) & 0xFF);
        assertTrue(Math.abs(difference) <= 2, "pixel " + i + ": " + Integer.toHexString(converted[i]) + " for "
            + Integer.toHexString(cmyk[i]));
      }
    }
    int[] unknown = ImageFiles.read(Files.write(dir.resolve("unknown.jpg"), withAdobeSegment(stored, 1)), LIMITS)
        .pixels();
    assertArrayEquals(converted, unknown);
  }

  @Test
  void jpegMarkersAreFoundAsLibjpegFindsThem() throws IOException {
    ByteArrayOutputStream header = new ByteArrayOutputStream();
    header.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xD8});
    header.writeBytes(new byte[] {1, 2, 3, (byte) 0xFF, (byte) 0xFF}); // stray bytes, then a fill byte
    header.writeBytes(adobeSegment(2));
    // Not Adobe's: another APP14, and one too short for libjpeg to read as Adobe's.
    header.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xEE, 0, 8, 'O', 't', 'h', 'e', 'r', 0});
    header.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xEE, 0, 9, 'A', 'd', 'o', 'b', 'e', 0, 0});
    // A baseline frame header: precision, height, width, 4 components (3 bytes each).
    header.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xC0, 0, 20, 8, 0, 1, 0, 1, 4});
    header.writeBytes(new byte[12]);
    header.writeBytes(new byte[] {(byte) 0xFF, (byte) 0xDA});
    byte[] bytes = header.toByteArray();
    assertEquals(new CmykJpeg.Header(4, 2), CmykJpeg.readHeader(new ByteArrayInputStream(bytes)));
    // A later Adobe segment decides; a file cut short gives what came before the cut.
    byte[] twice = concat(Arrays.copyOf(bytes, bytes.length - 2), adobeSegment(0),
        new byte[] {(byte) 0xFF, (byte) 0xDA});
    assertEquals(new CmykJpeg.Header(4, 0), CmykJpeg.readHeader(new ByteArrayInputStream(twice)));
    assertEquals(new CmykJpeg.Header(0, 2), CmykJpeg.readHeader(new ByteArrayInputStream(bytes, 0, 30)));
    assertEquals(new CmykJpeg.Header(0, CmykJpeg.NO_ADOBE_SEGMENT),
        CmykJpeg.readHeader(new ByteArrayInputStream(new byte[] {(byte) 0xFF, (byte) 0xD8})));
  }

  @Test
  void gifFirstFrameLiesOnItsLogicalScreen() throws IOException {
    // A 4 x 2 frame at (3, 2) on a 10 x 6 screen: around it, palette entry 0, as Pillow shows it (ImageIO gave the
    // frame alone); with a transparent entry, that one (alpha 0, which the preprocessor composites onto white).
    int[] palette = {0xFF0A141E, 0xFFC82828, 0xFF28C828, 0xFF2828C8};
    for (int transparent : new int[] {-1, 2}) {
      IndexColorModel model = new IndexColorModel(8, 4, palette, 0, false, transparent, DataBuffer.TYPE_BYTE);
      BufferedImage frame = new BufferedImage(4, 2, BufferedImage.TYPE_BYTE_INDEXED, model);
      frame.getRaster().setSamples(0, 0, 4, 2, 0, new int[] {1, 2, 3, 1, 3, 2, 1, 3});
      byte[] gif = onScreen(gifOf(frame, false), 10, 6, 3, 2);
      ImageFiles.Argb read = ImageFiles.read(Files.write(dir.resolve("screen.gif"), gif), LIMITS);
      assertEquals(10, read.width());
      assertEquals(6, read.height());
      int background = transparent < 0 ? palette[0] : palette[transparent] & 0x00FFFFFF;
      for (int y = 0; y < 6; y++) {
        for (int x = 0; x < 10; x++) {
          boolean inside = x >= 3 && x < 7 && y >= 2 && y < 4;
          int index = inside ? frame.getRaster().getSample(x - 3, y - 2, 0) : -1;
          int expected = !inside ? background : index == transparent ? palette[index] & 0x00FFFFFF : palette[index];
          assertEquals(expected, read.pixels()[y * 10 + x], "x " + x + ", y " + y);
        }
      }
    }
  }

  @Test
  void gifScreenIsCheckedBeforeDecoding() throws IOException {
    // A 2 x 2 frame on a screen of 20000 x 6000 pixels: what would be decoded is the screen, so it is refused.
    BufferedImage frame = new BufferedImage(2, 2, BufferedImage.TYPE_BYTE_INDEXED);
    byte[] gif = onScreen(gifOf(frame, false), 20_000, 6_000, 0, 0);
    assertMessage(Files.write(dir.resolve("wide.gif"), gif), "is larger than 100 megapixels");
  }

  @Test
  void everyGifFrameIsCheckedAsTheSavedModelChecksIt() throws IOException {
    // The SavedModel decodes every frame, so it refuses a GIF whose later frames exceed the limits; ImageIO decodes
    // the first only, and the JVM refused none of these before. The later frames hold no pixel data: the sizes
    // their descriptors declare are refused before anything is decoded.
    byte[] gif = gifOf(new BufferedImage(2, 2, BufferedImage.TYPE_BYTE_INDEXED), false);
    assertMessage(Files.write(dir.resolve("second.gif"), withFrames(gif, new int[] {0, 0, 20_000, 6_000})),
        "image of 20000 x 6000 pixels (width x height) is larger than 100 megapixels (a GIF: its logical screen, "
            + "2 x 2, grown to hold every frame)");
    assertMessage(Files.write(dir.resolve("far.gif"), withFrames(gif, new int[] {65_000, 0, 1_000, 2})),
        "image of 66000 x 2 pixels (width x height) has a side longer than 65535 pixels");
    // Frames each within the limits, 300,000,000 pixels in all with a first frame of 1 pixel: decoded; with a
    // first frame of 2 pixels, one too many.
    int[][] large = {{0, 0, 10_000, 10_000}, {0, 0, 10_000, 10_000}, {0, 0, 10_000, 9_999}, {0, 0, 9_999, 1}};
    byte[] one = withFrames(gifOf(new BufferedImage(1, 1, BufferedImage.TYPE_BYTE_INDEXED), false), large);
    ImageFiles.Argb read = ImageFiles.read(Files.write(dir.resolve("all.gif"), one), LIMITS);
    assertEquals(1, read.width());
    assertEquals(1, read.height());
    byte[] two = withFrames(gifOf(new BufferedImage(2, 1, BufferedImage.TYPE_BYTE_INDEXED), false), large);
    assertMessage(Files.write(dir.resolve("more.gif"), two),
        " is a GIF whose frames hold 300000001 pixels in all (5 frames); at most 300,000,000 are decoded");
  }

  @Test
  void interlacedGifFramesAreReadInOrder() throws IOException {
    // The JDK's reader misreads interlaced frames 2 to 4 rows high (ImageFiles.jdkMisreadsInterlacing); every
    // height here must give the frame as written. Indices from 1 up: the bug leaves rows at entry 0.
    int[] palette = new int[16];
    for (int i = 0; i < palette.length; i++) {
      palette[i] = 0xFF000000 | ((i * 16) << 16) | ((255 - i * 16) << 8) | ((i * 37) & 0xFF);
    }
    IndexColorModel model = new IndexColorModel(8, 16, palette, 0, false, -1, DataBuffer.TYPE_BYTE);
    Random random = new Random(20);
    for (int height = 1; height <= 20; height++) {
      for (int width : new int[] {1, 2, 3, 7, 16}) {
        BufferedImage frame = new BufferedImage(width, height, BufferedImage.TYPE_BYTE_INDEXED, model);
        int[] indices = random.ints(width * height, 1, 16).toArray();
        frame.getRaster().setSamples(0, 0, width, height, 0, indices);
        byte[] gif = gifOf(frame, true);
        assertTrue((gif[descriptorAt(gif) + 9] & 0x40) != 0, "not interlaced");
        int[] expected = Arrays.stream(indices).map(index -> palette[index]).toArray();
        Path file = Files.write(dir.resolve("interlaced.gif"), gif);
        assertArrayEquals(expected, ImageFiles.read(file, LIMITS).pixels(), width + " x " + height);
        if (height == 3 && width == 7) { // and on a screen, around it palette entry 0
          ImageFiles.Argb placed = ImageFiles.read(Files.write(file, onScreen(gif, 10, 5, 2, 1)), LIMITS);
          for (int y = 0; y < 5; y++) {
            for (int x = 0; x < 10; x++) {
              boolean inside = x >= 2 && x < 9 && y >= 1 && y < 4;
              assertEquals(inside ? expected[(y - 1) * 7 + x - 2] : palette[0], placed.pixels()[y * 10 + x],
                  "x " + x + ", y " + y);
            }
          }
        }
      }
    }
  }

  /** A four-component JPEG (quality 1) of one 8 x 8 block per entry of `blocks`, each 4 stored values. */
  private static byte[] jpegOfBlocks(int[][] blocks) throws IOException {
    WritableRaster raster = Raster.createInterleavedRaster(DataBuffer.TYPE_BYTE, 8 * blocks.length, 8, 4, null);
    for (int block = 0; block < blocks.length; block++) {
      for (int y = 0; y < 8; y++) {
        for (int x = 0; x < 8; x++) {
          raster.setPixel(8 * block + x, y, blocks[block]);
        }
      }
    }
    ImageWriter writer = ImageIO.getImageWritersByFormatName("jpeg").next();
    ImageWriteParam param = writer.getDefaultWriteParam();
    param.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
    param.setCompressionQuality(1.0f);
    return written(writer, new IIOImage(raster, null, null), param);
  }

  /** The JDK's GIF of `image`, its frame interlaced or not. */
  private static byte[] gifOf(BufferedImage image, boolean interlaced) throws IOException {
    ImageWriter writer = ImageIO.getImageWritersByFormatName("gif").next();
    ImageWriteParam param = writer.getDefaultWriteParam();
    param.setProgressiveMode(interlaced ? ImageWriteParam.MODE_DEFAULT : ImageWriteParam.MODE_DISABLED);
    return written(writer, new IIOImage(image, null, null), param);
  }

  private static byte[] written(ImageWriter writer, IIOImage image, ImageWriteParam param) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (ImageOutputStream stream = ImageIO.createImageOutputStream(out)) {
      writer.setOutput(stream);
      writer.write(null, image, param);
    } finally {
      writer.dispose();
    }
    return out.toByteArray();
  }

  /** Adobe's APP14 segment: "Adobe", version 100, two flag words, the colour transform. */
  private static byte[] adobeSegment(int transform) {
    return new byte[] {(byte) 0xFF, (byte) 0xEE, 0, 14, 'A', 'd', 'o', 'b', 'e', 0, 100, 0, 0, 0, 0, (byte) transform};
  }

  /** `jpeg` with Adobe's segment right after its start marker. */
  private static byte[] withAdobeSegment(byte[] jpeg, int transform) {
    return concat(Arrays.copyOf(jpeg, 2), adobeSegment(transform), Arrays.copyOfRange(jpeg, 2, jpeg.length));
  }

  /** `gif` (one frame, as the JDK writes it) with a logical screen of `width` x `height`, the frame at (left, top). */
  private static byte[] onScreen(byte[] gif, int width, int height, int left, int top) {
    byte[] out = gif.clone();
    ByteBuffer.wrap(out, 6, 4).order(ByteOrder.LITTLE_ENDIAN).putShort((short) width).putShort((short) height);
    ByteBuffer.wrap(out, descriptorAt(out) + 1, 4).order(ByteOrder.LITTLE_ENDIAN).putShort((short) left)
        .putShort((short) top);
    return out;
  }

  /** Where the first image descriptor of `gif` starts. */
  private static int descriptorAt(byte[] gif) {
    int at = 13 + ((gif[10] & 0x80) != 0 ? 3 * (2 << (gif[10] & 7)) : 0);
    while (gif[at] == 0x21) { // extensions: introducer, label, then sub-blocks up to a zero length
      at += 2;
      while (gif[at] != 0) {
        at += (gif[at] & 0xFF) + 1;
      }
      at++;
    }
    assertEquals(0x2C, gif[at], "no image descriptor");
    return at;
  }

  /**
   * `gif` (as the JDK writes it) with more frames, each (left, top, width, height), after a graphic control
   * extension, and holding no pixels: its data is a clear code and the end code.
   */
  private static byte[] withFrames(byte[] gif, int[]... frames) {
    assertEquals(0x3B, gif[gif.length - 1], "no trailer");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(gif, 0, gif.length - 1);
    for (int[] frame : frames) {
      out.writeBytes(new byte[] {0x21, (byte) 0xF9, 4, 0, 0, 0, 0, 0});
      ByteBuffer descriptor = ByteBuffer.allocate(10).order(ByteOrder.LITTLE_ENDIAN).put((byte) 0x2C);
      for (int field : frame) {
        descriptor.putShort((short) field);
      }
      out.writeBytes(descriptor.put((byte) 0).array());
      out.writeBytes(new byte[] {2, 1, 0x2C, 0}); // LZW code size 2; codes 4 (clear) and 5 (end) in 3 bits each
    }
    out.write(0x3B);
    return out.toByteArray();
  }

  private static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] part : parts) {
      out.writeBytes(part);
    }
    return out.toByteArray();
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
