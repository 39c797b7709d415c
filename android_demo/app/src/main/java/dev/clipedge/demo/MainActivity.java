package dev.clipedge.demo;

import android.app.Activity;
import android.content.Intent;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.text.InputType;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.EditText;
import android.widget.ImageView;
import android.widget.LinearLayout;
import android.widget.ScrollView;
import android.widget.Spinner;
import android.widget.Switch;
import android.widget.TextView;
import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.Environment;
import dev.clipedge.clip.ClipClassifier;
import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.ZeroShot;
import dev.clipedge.clip.image.ImagePreprocessor;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The demo's only screen: pick a photo, type labels (one per line), choose the variant and CPU or GPU, and see
 * the labels ranked with probabilities and where the time went. Everything that computes lives in
 * android_demo/clip ({@link ClipClassifier}); this class only moves pixels and text between the screen and it.
 */
public final class MainActivity extends Activity {
  private static final int PICK_PHOTO = 1;
  private static final String DEFAULT_LABELS = "a photo of a cat\na photo of a dog\na photo of a car\n"
      + "a photo of food\na photo of a person";

  private final ExecutorService worker = Executors.newSingleThreadExecutor();
  private final Handler ui = new Handler(Looper.getMainLooper());
  // Touched only on the worker thread.
  private Manifest manifest;
  private Environment environment;
  private ClipClassifier classifier;
  private String classifierKey = "";

  private ImageView preview;
  private EditText labels;
  private Spinner variants;
  private Switch gpu;
  private Button classify;
  private TextView output;
  private Uri photo;

  @Override
  protected void onCreate(Bundle state) {
    super.onCreate(state);
    setContentView(layout());
    output.setText("loading the export ...");
    worker.execute(() -> {
      try {
        manifest = Manifest.load(ExportFiles.install(this));
        environment = Environment.create(this);
        List<String> available = manifest.variants("image");
        ui.post(() -> {
          variants.setAdapter(new ArrayAdapter<>(this, android.R.layout.simple_spinner_dropdown_item, available));
          output.setText("export " + manifest.name() + ": pick a photo");
        });
      } catch (Exception e) {
        show("cannot load the export: " + e.getMessage());
      }
    });
  }

  private ScrollView layout() {
    LinearLayout column = new LinearLayout(this);
    column.setOrientation(LinearLayout.VERTICAL);
    column.setPadding(32, 32, 32, 32);
    Button pick = new Button(this);
    pick.setText("Pick a photo");
    pick.setOnClickListener(v -> startActivityForResult(
        new Intent(Intent.ACTION_GET_CONTENT).setType("image/*"), PICK_PHOTO));
    preview = new ImageView(this);
    preview.setAdjustViewBounds(true);
    preview.setMaxHeight(900);
    labels = new EditText(this);
    labels.setInputType(InputType.TYPE_CLASS_TEXT | InputType.TYPE_TEXT_FLAG_MULTI_LINE);
    labels.setText(DEFAULT_LABELS);
    variants = new Spinner(this);
    gpu = new Switch(this);
    gpu.setText("GPU (float16 suits it best)");
    classify = new Button(this);
    classify.setText("Classify");
    classify.setOnClickListener(v -> classify());
    output = new TextView(this);
    output.setTextIsSelectable(true);
    for (android.view.View view : new android.view.View[] {pick, preview, labels, variants, gpu, classify, output}) {
      column.addView(view);
    }
    ScrollView scroll = new ScrollView(this);
    scroll.addView(column);
    return scroll;
  }

  @Override
  protected void onActivityResult(int request, int result, Intent data) {
    super.onActivityResult(request, result, data);
    if (request == PICK_PHOTO && result == RESULT_OK && data != null && data.getData() != null) {
      photo = data.getData();
      preview.setImageURI(photo);
      output.setText("");
    }
  }

  private void classify() {
    Object variant = variants.getSelectedItem();
    if (photo == null || variant == null) {
      output.setText(photo == null ? "pick a photo first" : "the export is still loading");
      return;
    }
    List<String> texts = new ArrayList<>();
    for (String line : labels.getText().toString().split("\n")) {
      if (!line.trim().isEmpty()) {
        texts.add(line.trim());
      }
    }
    Accelerator accelerator = gpu.isChecked() ? Accelerator.GPU : Accelerator.CPU;
    Uri uri = photo;
    classify.setEnabled(false);
    output.setText("running ...");
    worker.execute(() -> {
      try {
        ClipClassifier model = classifier(variant.toString(), accelerator);
        Bitmap bitmap = decode(uri);
        int width = bitmap.getWidth();
        int height = bitmap.getHeight();
        int[] argb = new int[width * height];
        bitmap.getPixels(argb, 0, width, 0, 0, width, height);
        bitmap.recycle();
        ClipClassifier.Result result = model.classify(argb, width, height, texts);
        StringBuilder text = new StringBuilder();
        for (ZeroShot.LabelScore score : result.ranking()) {
          text.append(String.format(Locale.ROOT, "%6.2f%%  %s%n", 100 * score.probability(), score.label()));
        }
        text.append(String.format(Locale.ROOT, "%n%s on %s: resize %.1f ms, image %.1f ms, text %.1f ms (new labels)",
            variant, accelerator, result.preprocessMs(), result.imageMs(), result.textMs()));
        show(text.toString());
      } catch (Exception | OutOfMemoryError e) {
        show("failed: " + e.getMessage());
      }
    });
  }

  /** One classifier per (variant, accelerator), replaced when either changes. Worker thread only. */
  private ClipClassifier classifier(String variant, Accelerator accelerator) throws IOException {
    String key = variant + "/" + accelerator;
    if (!key.equals(classifierKey)) {
      if (classifier != null) {
        classifier.close();
        classifier = null;
      }
      classifier = ClipClassifier.open(manifest, variant, LiteRtAndroidModel.loader(manifest, accelerator,
          environment), 256);
      classifierKey = key;
    }
    return classifier;
  }

  /** The photo at full size, unpremultiplied ARGB (the core composites alpha itself), size checked first. */
  private Bitmap decode(Uri uri) throws IOException {
    BitmapFactory.Options bounds = new BitmapFactory.Options();
    bounds.inJustDecodeBounds = true;
    try (InputStream in = getContentResolver().openInputStream(uri)) {
      BitmapFactory.decodeStream(in, null, bounds);
    }
    if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
      throw new IOException("not an image Android can decode");
    }
    if ((long) bounds.outWidth * bounds.outHeight > ImagePreprocessor.MAX_PIXELS
        || Math.max(bounds.outWidth, bounds.outHeight) > ImagePreprocessor.MAX_SIDE) {
      throw new IOException("image of " + bounds.outWidth + "x" + bounds.outHeight + " is over the size limits");
    }
    BitmapFactory.Options options = new BitmapFactory.Options();
    options.inPreferredConfig = Bitmap.Config.ARGB_8888;
    options.inPremultiplied = false;
    try (InputStream in = getContentResolver().openInputStream(uri)) {
      Bitmap bitmap = BitmapFactory.decodeStream(in, null, options);
      if (bitmap == null) {
        throw new IOException("the photo could not be decoded");
      }
      return bitmap;
    }
  }

  private void show(String text) {
    ui.post(() -> {
      output.setText(text);
      classify.setEnabled(true);
    });
  }

  @Override
  protected void onDestroy() {
    worker.execute(() -> {
      if (classifier != null) {
        classifier.close();
      }
      if (environment != null) {
        environment.close();
      }
    });
    worker.shutdown();
    super.onDestroy();
  }
}
