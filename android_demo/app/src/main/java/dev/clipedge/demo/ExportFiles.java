package dev.clipedge.demo;

import android.content.Context;
import android.content.pm.PackageManager;
import android.content.res.AssetManager;
import dev.clipedge.clip.Contract;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;

/**
 * Where the app finds the export: a folder pushed with adb to the app's external files ({@code .../files/clip/},
 * see ../README.md) wins; otherwise the copy bundled in the APK's assets/clip/ is unpacked once to internal
 * storage, because LiteRT and the manifest's sha256 checks read files. The unpacking writes to a fresh folder
 * and renames it into place, so a killed app never leaves a half-copied export behind.
 */
final class ExportFiles {
  private static final String FOLDER = "clip";

  private ExportFiles() {}

  static Path install(Context context) throws IOException {
    File external = context.getExternalFilesDir(null);
    if (external != null && new File(new File(external, FOLDER), Contract.MANIFEST).isFile()) {
      return new File(external, FOLDER).toPath();
    }
    File target = new File(context.getFilesDir(), FOLDER);
    File stamp = new File(target, ".installed-" + installedAt(context));
    if (stamp.isFile()) {
      return target.toPath();
    }
    File fresh = new File(context.getFilesDir(), FOLDER + ".tmp");
    deleteTree(fresh);
    copyAssets(context.getAssets(), FOLDER, fresh);
    if (!new File(fresh, Contract.MANIFEST).isFile()) {
      throw new IOException("the APK has no export in assets/clip/ (build with -PclipExport=...) and none was "
          + "pushed to " + new File(external, FOLDER));
    }
    if (!new File(fresh, stamp.getName()).createNewFile()) {
      throw new IOException("cannot write " + fresh);
    }
    deleteTree(target);
    Files.move(fresh.toPath(), target.toPath(), StandardCopyOption.ATOMIC_MOVE);
    return target.toPath();
  }

  /** When this APK was installed or updated: a new APK may bundle another export. */
  private static long installedAt(Context context) throws IOException {
    try {
      return context.getPackageManager().getPackageInfo(context.getPackageName(), 0).lastUpdateTime;
    } catch (PackageManager.NameNotFoundException e) {
      throw new IOException("cannot read this app's package information", e);
    }
  }

  private static void copyAssets(AssetManager assets, String path, File destination) throws IOException {
    String[] children = assets.list(path);
    if (children != null && children.length > 0) {
      if (!destination.mkdirs() && !destination.isDirectory()) {
        throw new IOException("cannot create " + destination);
      }
      Arrays.sort(children);
      for (String child : children) {
        copyAssets(assets, path + "/" + child, new File(destination, child));
      }
      return;
    }
    try (InputStream in = assets.open(path)) {
      Files.copy(in, destination.toPath());
    }
  }

  private static void deleteTree(File file) throws IOException {
    File[] children = file.listFiles();
    if (children != null) {
      for (File child : children) {
        deleteTree(child);
      }
    }
    if (file.exists() && !file.delete()) {
      throw new IOException("cannot delete " + file);
    }
  }
}
