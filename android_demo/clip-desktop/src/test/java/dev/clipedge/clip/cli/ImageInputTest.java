package dev.clipedge.clip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.image.ImageFiles;
import dev.clipedge.clip.image.ImagePreprocessor;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An image file to the encoder's R*R*3 bytes: decode, then the preprocessor (embed-image's input). */
class ImageInputTest {
  @TempDir Path folder;

  private Path png(int width, int height, int type, int argb) throws IOException {
    BufferedImage image = new BufferedImage(width, height, type);
    for (int y = 0; y < height; y++) {
      for (int x = 0; x < width; x++) {
        image.setRGB(x, y, argb);
      }
    }
    Path file = folder.resolve(width + "x" + height + "-" + Integer.toHexString(argb) + ".png");
    ImageIO.write(image, "png", file.toFile());
    return file;
  }

  private static void assertEveryPixel(byte[] rgb, int r, int g, int b) {
    for (int i = 0; i < rgb.length; i += 3) {
      assertEquals(r, rgb[i] & 0xff, "red at " + i / 3);
      assertEquals(g, rgb[i + 1] & 0xff, "green at " + i / 3);
      assertEquals(b, rgb[i + 2] & 0xff, "blue at " + i / 3);
    }
  }

  @Test
  void uniformImageGivesItsColourInRgbOrder() throws IOException {
    // A uniform image is the same after any resize and crop; the byte order must be R, G, B (not ImageIO's
    // ARGB ints or BGR rasters), in a portrait, a landscape and a smaller-than-R image.
    for (int[] size : new int[][] {{5, 9}, {9, 5}, {2, 2}}) {
      byte[] rgb = ImageInput.rgb(png(size[0], size[1], BufferedImage.TYPE_INT_RGB, 0xff0a64c8),
          new ImagePreprocessor(4));
      assertEquals(4 * 4 * 3, rgb.length);
      assertEveryPixel(rgb, 0x0a, 0x64, 0xc8);
    }
  }

  @Test
  void transparencyIsCompositedOntoWhite() throws IOException {
    // Fully transparent black is white; half-transparent black (alpha 128) is 255 * (1 - 128/255) = 127.
    assertEveryPixel(ImageInput.rgb(png(4, 4, BufferedImage.TYPE_INT_ARGB, 0x00000000), new ImagePreprocessor(4)),
        255, 255, 255);
    byte[] half = ImageInput.rgb(png(4, 4, BufferedImage.TYPE_INT_ARGB, 0x80000000), new ImagePreprocessor(4));
    assertTrue(Math.abs((half[0] & 0xff) - 127) <= 1, "half-transparent black gave " + (half[0] & 0xff));
  }

  @Test
  void badFilesAreNamed() throws IOException {
    Path missing = folder.resolve("missing.png");
    ImageFiles.ImageFileException e = assertThrows(ImageFiles.ImageFileException.class,
        () -> ImageInput.rgb(missing, new ImagePreprocessor(4)));
    assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    Path text = Files.writeString(folder.resolve("notes.png"), "not an image");
    e = assertThrows(ImageFiles.ImageFileException.class, () -> ImageInput.rgb(text, new ImagePreprocessor(4)));
    assertTrue(e.getMessage().contains(text.toString()), e.getMessage());
  }
}
