package dev.clipedge.clip.cli;

import java.io.InputStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code android_demo/clip-jvm COMMAND [options]}: the desktop entry to the same core an Android app uses.
 *
 * <p>Every failure the user can cause (missing export, corrupt image, unknown variant, checksum mismatch, bad
 * input line) ends the process with a non-zero status and one line on stderr naming the problem; set
 * CLIP_JVM_DEBUG=1 to get the stack trace as well.
 */
public final class Main {
  /** One subcommand; returns the process's exit status. */
  public interface Command {
    int run(Options options, InputStream in, PrintStream out) throws Exception;

    String usage();
  }

  /** A problem with the command line itself (exit status 2). */
  public static final class UsageException extends IllegalArgumentException {
    public UsageException(String message) {
      super(message);
    }
  }

  private static final Map<String, Command> COMMANDS = new LinkedHashMap<>();

  static {
    COMMANDS.put("tokenize", new TokenizeCommand());
    COMMANDS.put("embed-text", new EmbedTextCommand());
    COMMANDS.put("embed-image", new EmbedImageCommand());
    COMMANDS.put("classify", new ClassifyCommand());
    COMMANDS.put("preprocess", new PreprocessCommand());
    COMMANDS.put("index", new IndexCommand());
    COMMANDS.put("search", new SearchCommand());
  }

  private Main() {}

  public static void main(String[] argv) {
    System.exit(run(argv, System.in, System.out, System.err));
  }

  static int run(String[] argv, InputStream in, PrintStream out, PrintStream err) {
    if (argv.length == 0 || !COMMANDS.containsKey(argv[0])) {
      err.println((argv.length == 0 ? "clip-jvm: no command given" : "clip-jvm: unknown command '" + argv[0] + "'")
          + "; commands: " + String.join(", ", COMMANDS.keySet()));
      for (Command command : COMMANDS.values()) {
        err.println("  clip-jvm " + command.usage());
      }
      return 2;
    }
    String name = argv[0];
    try {
      Options options = Options.parse(List.of(argv).subList(1, argv.length));
      int status = COMMANDS.get(name).run(options, in, out);
      out.flush();
      return status;
    } catch (UsageException e) {
      err.println("clip-jvm " + name + ": " + e.getMessage() + "; usage: clip-jvm " + COMMANDS.get(name).usage());
      return 2;
    } catch (Exception | OutOfMemoryError | StackOverflowError e) {
      String message = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
      err.println("clip-jvm " + name + ": " + message.replace('\n', ' '));
      if (System.getenv("CLIP_JVM_DEBUG") != null) {
        e.printStackTrace(err);
      }
      return 1;
    }
  }

  /** {@code --name value} / {@code --name=value} flags and positional arguments. */
  public static final class Options {
    private final Map<String, String> flags = new LinkedHashMap<>();
    private final List<String> positional = new ArrayList<>();
    private final List<String> read = new ArrayList<>();

    static Options parse(List<String> args) {
      Options options = new Options();
      for (int i = 0; i < args.size(); i++) {
        String arg = args.get(i);
        if (arg.equals("--")) {
          options.positional.addAll(args.subList(i + 1, args.size()));
          break;
        }
        if (arg.startsWith("--")) {
          int equals = arg.indexOf('=');
          String key = equals < 0 ? arg.substring(2) : arg.substring(2, equals);
          String value;
          if (equals >= 0) {
            value = arg.substring(equals + 1);
          } else if (i + 1 < args.size()) {
            value = args.get(++i);
          } else {
            throw new UsageException("--" + key + " needs a value");
          }
          if (options.flags.put(key, value) != null) {
            throw new UsageException("--" + key + " given twice");
          }
        } else {
          options.positional.add(arg);
        }
      }
      return options;
    }

    /** The flag's value; a missing flag is a usage error. */
    public String required(String key) {
      String value = optional(key, null);
      if (value == null) {
        throw new UsageException("--" + key + " is required");
      }
      return value;
    }

    public String optional(String key, String fallback) {
      read.add(key);
      return flags.getOrDefault(key, fallback);
    }

    public List<String> positional() {
      return positional;
    }

    /** Call after reading every flag a command knows: an unknown one is a usage error, not ignored. */
    public void rejectUnknown() {
      for (String key : flags.keySet()) {
        if (!read.contains(key)) {
          throw new UsageException("unknown option --" + key);
        }
      }
    }
  }
}
